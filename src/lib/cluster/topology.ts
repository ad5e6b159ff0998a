/**
 * The topology model: a pure parse of CLUSTER NODES and the queries every verb needs.
 * No I/O here; the loader (cluster.ts) fills it from live nodes.
 */
import {formatAddress} from './address.js'
import {SlotctlError, usageError} from '../core/errors.js'
import {type SlotRange, countSlots, mergeRanges} from '../core/slots.js'

export type NodeRole = 'master' | 'replica' | 'unknown'

export interface ClusterNode {
  id: string
  host: string
  port: number
  busPort: number
  /** host:port as this node announces it; '' for a node without address. */
  address: string
  hostname?: string
  aux: Record<string, string>
  flags: string[]
  role: NodeRole
  masterId: string | null
  myself: boolean
  /** flag `fail`: the cluster agreed the node is down. */
  failed: boolean
  /** flag `fail?`: this view suspects the node is down. */
  suspectedFailed: boolean
  handshake: boolean
  noAddress: boolean
  noFailover: boolean
  pingSent: number
  pongReceived: number
  configEpoch: number
  linkConnected: boolean
  /** Read-only: views loaded together share these arrays (SlotFieldCache), and their printed form is memoized. */
  slots: SlotRange[]
  /** Open slots this node reports about itself: slot → node id. */
  migrating: Record<number, string>
  importing: Record<number, string>
}

function splitHostPort(hostPort: string): {host: string; port: number} {
  const colon = hostPort.lastIndexOf(':')
  if (colon === -1) return {host: hostPort, port: 0}
  return {host: hostPort.slice(0, colon), port: Number(hostPort.slice(colon + 1)) || 0}
}

function parseAddressField(field: string): Pick<ClusterNode, 'aux' | 'busPort' | 'host' | 'hostname' | 'port'> {
  const [endpoint, ...extras] = field.split(',')
  const [hostPort, busPart] = endpoint.split('@')
  const {host, port} = splitHostPort(hostPort)
  const busPort = Number((busPart ?? '').split(',')[0]) || 0
  const aux: Record<string, string> = {}
  let hostname: string | undefined
  for (const [index, extra] of extras.entries()) {
    const eq = extra.indexOf('=')
    if (eq === -1 && index === 0) hostname = extra || undefined
    else if (eq !== -1) aux[extra.slice(0, eq)] = extra.slice(eq + 1)
  }
  if (hostname === undefined && aux.hostname) hostname = aux.hostname
  return {aux, busPort, host, hostname, port}
}

export interface SlotFields {
  importing: Record<number, string>
  migrating: Record<number, string>
  slots: SlotRange[]
}

function isBlank(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 13
}

/** The eight fields before the slots, and where the slots begin (a native regex: fast even before the JIT warms up). */
const LEADING_FIELDS = /^\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/

function leadingFields(line: string): {fields: string[]; rest: number} | undefined {
  const match = LEADING_FIELDS.exec(line)
  return match ? {fields: match.slice(1), rest: match[0].length} : undefined
}

/**
 * The slot fields from `from` to the end of a CLUSTER NODES line: `N`, `N-M` and open-slot
 * markers (anything else is ignored). Scanned in place, without a split or a regex per
 * field: a fragmented slot map has 16384 fields in every node's view, and check reads the
 * view of every node.
 */
function parseSlotFields(line: string, from: number): SlotFields {
  const owned: SlotRange[] = []
  const migrating: Record<number, string> = {}
  const importing: Record<number, string> = {}
  let index = from
  while (index < line.length) {
    if (isBlank(line.charCodeAt(index))) {
      index++
      continue
    }
    const start = index
    let first = 0
    let last = -1
    let digits = 0
    let plain = true
    for (; index < line.length; index++) {
      const code = line.charCodeAt(index)
      if (isBlank(code)) break
      if (code >= 48 && code <= 57) {
        if (last === -1) first = first * 10 + code - 48
        else last = last * 10 + code - 48
        digits++
      } else if (code === 45 && last === -1 && digits > 0) {
        last = 0
        digits = 0
      } else {
        plain = false
      }
    }
    if (plain && digits > 0) {
      if (last === -1) owned.push([first, first])
      else if (last >= first) owned.push([first, last])
    } else if (!plain && line.charCodeAt(start) === 91) {
      const open = /^\[(\d+)-([<>])-([0-9a-f]+)\]$/i.exec(line.slice(start, index))
      if (open) (open[2] === '>' ? migrating : importing)[Number(open[1])] = open[3]
    }
  }
  return {importing, migrating, slots: mergeRanges(owned)}
}

/**
 * Parsed slot fields by their text, shared by the views of one load: every node lists the
 * same slots for a given master, so a 60-node cluster's views need each master's slots
 * parsed once, not 60 times. The parsed ranges are then shared: treat them as read-only.
 */
export type SlotFieldCache = Map<string, SlotFields>

function cachedSlotFields(line: string, from: number, cache: SlotFieldCache | undefined): SlotFields {
  if (!cache || from >= line.length) return parseSlotFields(line, from)
  const text = line.slice(from)
  let fields = cache.get(text)
  if (!fields) cache.set(text, (fields = parseSlotFields(line, from)))
  return fields
}

export function parseNodeLine(line: string, cache?: SlotFieldCache): ClusterNode {
  const leading = leadingFields(line)
  if (!leading) throw new SlotctlError(`unexpected CLUSTER NODES line: '${line.trim()}'`, {code: 'E_PROTOCOL'})
  const {fields, rest} = leading
  const [id, addressField, flagField, master, pingSent, pongReceived, configEpoch, linkState] = fields
  const {aux, busPort, host, hostname, port} = parseAddressField(addressField)
  const flags = flagField === 'noflags' ? [] : flagField.split(',')
  const has = (flag: string) => flags.includes(flag)
  const role: NodeRole = has('master') ? 'master' : has('slave') ? 'replica' : 'unknown'
  const noAddress = has('noaddr') || !host || port === 0
  const {importing, migrating, slots} = cachedSlotFields(line, rest, cache)
  // one literal, no spreads: spreading into an object this size takes a slow path in V8,
  // and check builds one per node per view (3600 for 60 nodes)
  return {
    aux,
    busPort,
    host,
    hostname,
    port,
    address: noAddress ? '' : formatAddress({host, port}),
    configEpoch: Number(configEpoch) || 0,
    failed: has('fail'),
    flags,
    handshake: has('handshake'),
    id,
    linkConnected: linkState === 'connected',
    masterId: master === '-' ? null : master,
    myself: has('myself'),
    noAddress,
    noFailover: has('nofailover'),
    pingSent: Number(pingSent) || 0,
    pongReceived: Number(pongReceived) || 0,
    role,
    suspectedFailed: has('fail?'),
    importing,
    migrating,
    slots,
  }
}

export function parseClusterNodes(text: string, cache?: SlotFieldCache): ClusterNode[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => parseNodeLine(line, cache))
}

/** Parses `key:value` lines as returned by INFO and CLUSTER INFO. */
export function parseInfo(text: string): Record<string, string> {
  const info: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const trimmed = line.trim()
    if (!trimmed || trimmed.startsWith('#')) continue
    const colon = trimmed.indexOf(':')
    if (colon > 0) info[trimmed.slice(0, colon)] = trimmed.slice(colon + 1)
  }
  return info
}

/** Sum of `keys=` over the `dbN:keys=...` lines of INFO keyspace. */
export function keyCountFromInfo(info: Record<string, string>): number {
  let keys = 0
  for (const [field, value] of Object.entries(info)) {
    if (!/^db\d+$/.test(field)) continue
    const match = /keys=(\d+)/.exec(value)
    if (match) keys += Number(match[1])
  }
  return keys
}

export function myselfOf(nodes: readonly ClusterNode[]): ClusterNode | undefined {
  return nodes.find((node) => node.myself)
}

export function mastersOf(nodes: readonly ClusterNode[]): ClusterNode[] {
  return nodes.filter((node) => node.role === 'master')
}

export function replicasOf(nodes: readonly ClusterNode[], masterId: string): ClusterNode[] {
  return nodes.filter((node) => node.role === 'replica' && node.masterId === masterId)
}

export type MarkerKind = 'importing' | 'migrating'

export interface SlotMarker {
  slot: number
  kind: MarkerKind
  /** the node the slot migrates to, or is imported from */
  peer: string
}

/**
 * Open-slot markers `node` shows that `other` does not show the same way (same slot, kind
 * and peer); all of them without `other`. Used to tell a replica's copy of its master's
 * markers (Valkey replicates SETSLOT) from a marker only the replica still has.
 */
export function markersNotOn(node: Pick<ClusterNode, 'importing' | 'migrating'>, other?: Pick<ClusterNode, 'importing' | 'migrating'>): SlotMarker[] {
  const markers: SlotMarker[] = []
  for (const kind of ['migrating', 'importing'] as const) {
    for (const [slot, peer] of Object.entries(node[kind])) if (other?.[kind][Number(slot)] !== peer) markers.push({kind, peer, slot: Number(slot)})
  }
  return markers
}

/** Slots a node marks migrating or importing, in the order it lists them. */
export function openSlotsOf(node: Pick<ClusterNode, 'importing' | 'migrating'>): number[] {
  return [...Object.keys(node.migrating), ...Object.keys(node.importing)].map(Number)
}

export function slotCount(node: Pick<ClusterNode, 'slots'>): number {
  return countSlots(node.slots)
}

/** slot → owning node id, from the slot ranges in a list of nodes (first owner wins). */
export function slotOwners(nodes: readonly ClusterNode[]): Map<number, string> {
  const owners = new Map<number, string>()
  for (const node of nodes) {
    if (node.role !== 'master') continue
    for (const [start, end] of node.slots) for (let s = start; s <= end; s++) if (!owners.has(s)) owners.set(s, node.id)
  }
  return owners
}

/**
 * A stable signature of who owns which slot, used to decide whether nodes agree.
 * Open-slot markers are left out on purpose: they are local state, not configuration.
 */
export function slotMapSignature(nodes: readonly ClusterNode[]): string {
  // sorted by id before the (long) range texts are joined in: ids are unique, so this is the
  // order of the whole strings, without comparing them
  return nodes
    .filter((node) => node.slots.length > 0)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((node) => `${node.id}:${rangesText(node.slots)}`)
    .join('|')
}

/** Views loaded together share their parsed ranges (SlotFieldCache): each is printed once. */
const printedRanges = new WeakMap<readonly SlotRange[], string>()

function rangesText(slots: readonly SlotRange[]): string {
  let text = printedRanges.get(slots)
  if (text === undefined) printedRanges.set(slots, (text = slots.map(([a, b]) => `${a}-${b}`).join(',')))
  return text
}

/**
 * Resolves a node id or unique id prefix against known nodes.
 * Unknown and ambiguous prefixes are usage errors naming the candidates.
 */
/** Shorter prefixes match by accident too easily for a command that changes the cluster. */
export const MIN_ID_PREFIX = 4

export function resolveNodeId(nodes: readonly ClusterNode[], prefix: string): ClusterNode {
  const wanted = prefix.trim().toLowerCase()
  if (!/^[0-9a-f]{1,40}$/.test(wanted)) throw usageError(`'${prefix}' is not a node id (40 hex characters, or a unique prefix)`)
  if (wanted.length < MIN_ID_PREFIX) throw usageError(`node id prefix '${prefix}' is too short: give at least ${MIN_ID_PREFIX} characters of the id`, ['list the node ids with: slotctl check HOST:PORT'])
  const exact = nodes.find((node) => node.id === wanted)
  if (exact) return exact
  const matches = nodes.filter((node) => node.id.startsWith(wanted))
  if (matches.length === 1) return matches[0]
  if (matches.length === 0) {
    throw new SlotctlError(`unknown node id '${prefix}': no node of this cluster has an id starting with it`, {
      code: 'E_UNKNOWN_NODE',
      exitCode: 2,
      suggestions: ['list the node ids with: slotctl check HOST:PORT'],
    })
  }
  const candidates = matches.map((node) => `${node.id.slice(0, 12)} (${node.address || 'no address'})`).join(', ')
  throw new SlotctlError(`node id prefix '${prefix}' is ambiguous: it matches ${candidates}`, {code: 'E_AMBIGUOUS_NODE', exitCode: 2})
}

export function shortId(id: string): string {
  return id.slice(0, 8)
}
