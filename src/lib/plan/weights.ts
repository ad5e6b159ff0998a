/**
 * Parses `--weight ID=W` values (redis-cli's `--cluster-weight`): ID is a node id or unique
 * prefix, W a non-negative number (0 drains the node). Pure: resolves against known nodes.
 */
import {usageError} from '../core/errors.js'
import {type ClusterNode, resolveNodeId} from '../cluster/topology.js'

/**
 * Weights are relative, so a million to one is already more than any cluster can express
 * (16384 slots); a larger weight would only overflow the planner's sums to Infinity.
 */
export const MAX_WEIGHT = 1_000_000

export function parseWeights(specs: readonly string[], nodes: readonly ClusterNode[]): Map<string, number> {
  const weights = new Map<string, number>()
  for (const spec of specs) {
    const eq = spec.lastIndexOf('=')
    if (eq <= 0 || eq === spec.length - 1) throw usageError(`--weight '${spec}' must look like NODE_ID=WEIGHT (e.g. 3c3a0c74=2)`)
    const idText = spec.slice(0, eq)
    const weightText = spec.slice(eq + 1).trim()
    const weight = Number(weightText)
    if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(weightText)) throw usageError(`--weight '${spec}': '${weightText}' is not a number`)
    if (weight < 0) throw usageError(`--weight '${spec}': a weight cannot be negative (0 drains the node)`)
    if (!(weight <= MAX_WEIGHT)) throw usageError(`--weight '${spec}': ${weightText} is out of range (0 to ${MAX_WEIGHT}; weights are relative, e.g. 1 and 2)`)
    const node = resolveNodeId(nodes, idText)
    if (node.role !== 'master') throw usageError(`--weight '${spec}': ${node.address || node.id.slice(0, 8)} is a ${node.role}, not a master`)
    if (weights.has(node.id) && weights.get(node.id) !== weight) throw usageError(`--weight gives ${node.id.slice(0, 8)} two different weights`)
    weights.set(node.id, weight)
  }
  return weights
}
