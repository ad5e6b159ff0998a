/**
 * The JSON contract every verb's result follows (docs/json.md, schemas/*.schema.json):
 * a node is {id, address} (pairs as sourceId/sourceAddress, targetId/targetAddress), slots are
 * [[start,end],...] beside a count, durations are elapsedMs, warnings and errors are arrays of
 * {code, message}, and every result carries status and schemaVersion.
 */
import {type SlotRange, countSlots, toRanges} from './slots.js'
import {compareNatural} from './compare.js'

/** Bumped only when a field changes meaning or disappears; new fields keep the version. */
export const SCHEMA_VERSION = 1

export interface NodeRef {
  id: string
  address: string
}

/** One warning or error: a stable code, one human line, and what it is about. */
export interface Issue {
  code: string
  message: string
  nodes?: NodeRef[]
  slots?: SlotRange[]
  slotCount?: number
  /** The next step, when there is one (printed as a `hint:` line). */
  hint?: string
}

/** What every verb returns; --json prints it with schemaVersion in front. */
export interface VerbResult {
  status: string
  warnings: Issue[]
  errors: Issue[]
}

export interface ErrorEnvelope {
  code: string
  exitCode: number
  message: string
  suggestions?: string[]
}

/** --json output when a verb fails as a whole (partial failures are results with errors). */
export function errorDocument(error: ErrorEnvelope): {schemaVersion: number; status: 'error'; error: ErrorEnvelope} {
  return {schemaVersion: SCHEMA_VERSION, status: 'error', error}
}

export function successDocument<R extends object>(result: R): {schemaVersion: number} & R {
  return {schemaVersion: SCHEMA_VERSION, ...result}
}

export function nodeRef(node: {id: string; address: string}): NodeRef {
  return {address: node.address, id: node.id}
}

/** Slot numbers (any order) as the contract's ranges plus count. */
export function slotSet(slots: Iterable<number>): {slots: SlotRange[]; slotCount: number} {
  const ranges = toRanges(slots)
  return {slotCount: countSlots(ranges), slots: ranges}
}

export function rangeSet(ranges: readonly SlotRange[]): {slots: SlotRange[]; slotCount: number} {
  return {slotCount: countSlots(ranges), slots: ranges.map(([start, end]) => [start, end])}
}

export function issue(code: string, message: string, extra: Omit<Issue, 'code' | 'message'> = {}): Issue {
  return {code, message, ...extra}
}

/** host:port order with numeric parts compared as numbers (…:7002 before …:7010). */
export function compareAddresses(a: string, b: string): number {
  return compareNatural(a, b)
}

export function byAddress<T extends {address: string}>(a: T, b: T): number {
  return compareAddresses(a.address, b.address)
}

/** Where slots matter: by first owned slot; nodes without slots last, by address. */
export function byFirstSlot<T extends {address: string; slots: readonly SlotRange[]}>(a: T, b: T): number {
  const first = (node: T) => node.slots[0]?.[0] ?? Number.MAX_SAFE_INTEGER
  return first(a) - first(b) || byAddress(a, b)
}
