/**
 * Zones (failure domains above hosts) as the operator declares them: `--zone HOST_OR_ADDR=ZONE`
 * flags and a `--zones-file` with one `HOST_OR_ADDR=ZONE` per line (# comments allowed).
 * An exact HOST:PORT entry wins over a host entry. A node the operator names no zone for
 * takes the `availability_zone` its server reports (Valkey ≥ 8, config availability-zone).
 */

import type {NodePool} from '../cluster/connection.js'
import {readServerFeaturesOf} from '../cluster/server-info.js'
import {errorMessage, usageError} from '../core/errors.js'
import type {ZoneOf} from '../plan/placement.js'
import {readRegularFileSync} from '../files.js'

const MAX_ZONES_BYTES = 16 * 1024 * 1024

export type ZoneMap = Map<string, string>

function parseEntry(entry: string, where: string): [string, string] {
  const eq = entry.lastIndexOf('=')
  const key = eq === -1 ? '' : entry.slice(0, eq).trim()
  const zone = eq === -1 ? '' : entry.slice(eq + 1).trim()
  if (!key || !zone) throw usageError(`invalid zone ${where} '${entry}': expected HOST_OR_ADDR=ZONE`, ['e.g. --zone 10.0.1.5=eu-west-1a or --zone 10.0.1.5:7000=eu-west-1a'])
  return [key, zone]
}

function add(map: ZoneMap, [key, zone]: [string, string], where: string): void {
  const existing = map.get(key)
  if (existing !== undefined && existing !== zone) throw usageError(`${key} is given two zones (${existing} and ${zone}) in ${where}`)
  map.set(key, zone)
}

export function parseZoneText(text: string, source = 'zones file'): ZoneMap {
  const map: ZoneMap = new Map()
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*$/, '').trim()
    if (line) add(map, parseEntry(line, `at ${source} line ${index + 1}`), source)
  }
  return map
}

export function readZones(flags: readonly string[] = [], file?: string): ZoneMap {
  let map: ZoneMap = new Map()
  if (file) {
    let text: string
    try {
      text = readRegularFileSync(file, MAX_ZONES_BYTES).toString('utf8')
    } catch (error) {
      throw usageError(`cannot read --zones-file '${file}': ${errorMessage(error)}`)
    }
    map = parseZoneText(text, file)
  }
  for (const entry of flags) add(map, parseEntry(entry, 'flag'), '--zone flags and the zones file')
  return map
}

export function zoneLookup(map: ZoneMap): ZoneOf {
  return (node) => map.get(node.address) ?? map.get(node.host)
}

/** address → the availability_zone each server reports, for those that report one. */
export async function reportedZones(pool: NodePool, addresses: readonly string[]): Promise<Map<string, string>> {
  const features = await readServerFeaturesOf(pool, addresses)
  const zones = new Map<string, string>()
  for (const [address, node] of features) if (node.availabilityZone) zones.set(address, node.availabilityZone)
  return zones
}

/** The operator's zones first; a node without one falls back to the zone its server reports. */
export function zoneLookupWithReported(map: ZoneMap, reported: ReadonlyMap<string, string>): ZoneOf {
  const explicit = zoneLookup(map)
  return (node) => explicit(node) ?? reported.get(node.address)
}

/** Entries that matched none of the nodes: almost always a typo the operator wants to hear about. */
export function unusedZoneKeys(map: ZoneMap, nodes: ReadonlyArray<{address: string; host: string}>): string[] {
  return [...map.keys()].filter((key) => !nodes.some((node) => node.address === key || node.host === key))
}
