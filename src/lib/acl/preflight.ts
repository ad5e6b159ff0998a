/**
 * Least privilege: before a change, checks that the connected user may run every command the
 * change needs on every node it touches, so a missing ACL right stops the run before the
 * first SETSLOT instead of between a MIGRATE and its SETSLOT.
 *
 * Each right is checked with ACL DRYRUN (Redis 7.0+, Valkey) where the user may run it, and
 * otherwise with a harmless probe: the command itself, with arguments that pass its arity
 * check and that the command rejects once the server's ACL check has let it through (an
 * out-of-range slot, an unknown node id, a bad payload). NOPERM then means the right is
 * missing; any other answer means it is there; nothing changes either way. A denied probe
 * leaves an entry in ACL LOG, as the real command would.
 *
 * Rights no probe can test harmlessly (CLUSTER BUMPEPOCH, MULTI, EXEC, WATCH, DEL, SET, ...)
 * are checked, without ACL DRYRUN, by queueing them in a transaction on a connection of their
 * own: the server's ACL check runs when a command is queued (QUEUED, or a redirection, means
 * allowed), and the connection is dropped without EXEC, so nothing queued ever runs. A right
 * that still cannot be checked (MULTI itself denied) counts as missing: the run would
 * otherwise find out half-way.
 */
import type {Redis} from 'ioredis'

import type {ClusterSnapshot} from '../cluster/loader.js'
import {NODE_PARALLELISM, type NodePool, settleLimit} from '../cluster/connection.js'
import {SlotctlError} from '../core/errors.js'
import type {MigrationPlan} from '../plan/types.js'
import {mastersOf} from '../cluster/topology.js'

export interface Permission {
  /** As the operator reads it: `CLUSTER SETSLOT`. */
  command: string
  /** The ACL rule that grants it: `+cluster|setslot`, `+migrate ~*`. */
  rule: string
  /** Arguments that pass the arity and ACL checks and then fail (or only read); undefined: no such arguments exist, only ACL DRYRUN can tell. */
  probe?: Array<number | string>
  /** Arguments for ACL DRYRUN (default: the probe). */
  dryrun?: Array<number | string>
}

/** A key name no narrow key pattern is likely to grant: the rights below need every key (`~*`). */
const PROBE_KEY = 'slotctl:acl-probe'
const UNKNOWN_NODE = '0'.repeat(40)

const permission = (command: string, rule: string, probe?: Array<number | string>, dryrun?: Array<number | string>): Permission => ({command, dryrun, probe, rule})

export const PERMISSIONS = {
  asking: permission('ASKING', '+asking', ['ASKING']),
  clientList: permission('CLIENT LIST', '+client|list', ['CLIENT', 'LIST', 'TYPE', 'pubsub']),
  clientSetname: permission('CLIENT SETNAME', '+client|setname', ['CLIENT', 'SETNAME', 'slotctl']),
  commandInfo: permission('COMMAND INFO', '+command|info', ['COMMAND', 'INFO', 'get']),
  clusterAddslots: permission('CLUSTER ADDSLOTS', '+cluster|addslots', ['CLUSTER', 'ADDSLOTS', 16_384]),
  // slot 16384 does not exist: refused after the ACL check
  clusterDelslots: permission('CLUSTER DELSLOTS', '+cluster|delslots', ['CLUSTER', 'DELSLOTS', 16_384]),
  clusterAddslotsrange: permission('CLUSTER ADDSLOTSRANGE', '+cluster|addslotsrange', ['CLUSTER', 'ADDSLOTSRANGE', 16_384, 16_384]),
  // BUMPEPOCH takes no argument that could make it fail: only ACL DRYRUN checks it
  clusterBumpepoch: permission('CLUSTER BUMPEPOCH', '+cluster|bumpepoch', undefined, ['CLUSTER', 'BUMPEPOCH']),
  clusterCountkeysinslot: permission('CLUSTER COUNTKEYSINSLOT', '+cluster|countkeysinslot', ['CLUSTER', 'COUNTKEYSINSLOT', 0]),
  clusterFailover: permission('CLUSTER FAILOVER', '+cluster|failover', ['CLUSTER', 'FAILOVER', 'slotctl-acl-probe'], ['CLUSTER', 'FAILOVER']),
  clusterForget: permission('CLUSTER FORGET', '+cluster|forget', ['CLUSTER', 'FORGET', UNKNOWN_NODE]),
  // Valkey >= 9 only (atomic slot migration): the loader reads the jobs from every node
  clusterGetslotmigrations: permission('CLUSTER GETSLOTMIGRATIONS', '+cluster|getslotmigrations', ['CLUSTER', 'GETSLOTMIGRATIONS']),
  // slot 16384 does not exist: the job is refused after the ACL check
  clusterMigrateslots: permission('CLUSTER MIGRATESLOTS', '+cluster|migrateslots', ['CLUSTER', 'MIGRATESLOTS', 'SLOTSRANGE', 16_384, 16_384, 'NODE', UNKNOWN_NODE]),
  // a probe would cancel real jobs: only ACL DRYRUN can tell
  clusterCancelslotmigrations: permission('CLUSTER CANCELSLOTMIGRATIONS', '+cluster|cancelslotmigrations', undefined, ['CLUSTER', 'CANCELSLOTMIGRATIONS']),
  clusterGetkeysinslot: permission('CLUSTER GETKEYSINSLOT', '+cluster|getkeysinslot', ['CLUSTER', 'GETKEYSINSLOT', 0, 0]),
  clusterInfo: permission('CLUSTER INFO', '+cluster|info', ['CLUSTER', 'INFO']),
  clusterMeet: permission('CLUSTER MEET', '+cluster|meet', ['CLUSTER', 'MEET', '256.256.256.256', 1]),
  clusterNodes: permission('CLUSTER NODES', '+cluster|nodes', ['CLUSTER', 'NODES']),
  clusterReplicate: permission('CLUSTER REPLICATE', '+cluster|replicate', ['CLUSTER', 'REPLICATE', UNKNOWN_NODE]),
  clusterReset: permission('CLUSTER RESET', '+cluster|reset', ['CLUSTER', 'RESET', 'slotctl-acl-probe'], ['CLUSTER', 'RESET', 'HARD']),
  clusterSetConfigEpoch: permission('CLUSTER SET-CONFIG-EPOCH', '+cluster|set-config-epoch', ['CLUSTER', 'SET-CONFIG-EPOCH', -1]),
  clusterSetslot: permission('CLUSTER SETSLOT', '+cluster|setslot', ['CLUSTER', 'SETSLOT', 16_384, 'STABLE']),
  dump: permission('DUMP', '+dump ~*', ['DUMP', PROBE_KEY]),
  functionDump: permission('FUNCTION DUMP', '+function|dump', ['FUNCTION', 'DUMP']),
  functionList: permission('FUNCTION LIST', '+function|list', ['FUNCTION', 'LIST', 'LIBRARYNAME', 'slotctl-acl-probe']),
  functionRestore: permission('FUNCTION RESTORE', '+function|restore', ['FUNCTION', 'RESTORE', 'not-a-payload']),
  info: permission('INFO', '+info', ['INFO', 'server']),
  dbsize: permission('DBSIZE', '+dbsize', ['DBSIZE']),
  // MULTI alone changes nothing; EXEC without MULTI is refused after the ACL check
  multi: permission('MULTI', '+multi', undefined, ['MULTI']),
  // EXEC outside MULTI is answered before its ACL check: only ACL DRYRUN can tell
  exec: permission('EXEC', '+exec', undefined, ['EXEC']),
  memoryUsage: permission('MEMORY USAGE', '+memory|usage ~*', ['MEMORY', 'USAGE', PROBE_KEY]),
  // the key must be missing: MIGRATE then answers NOKEY without connecting anywhere
  migrate: permission('MIGRATE', '+migrate ~*', ['MIGRATE', '127.0.0.1', 1, PROBE_KEY, 0, 1]),
  restoreAsking: permission('RESTORE-ASKING', '+restore-asking ~*', ['RESTORE-ASKING', PROBE_KEY, 0, 'not-a-payload']),
  // a payload no server accepts: refused after the ACL check (or redirected: allowed)
  restore: permission('RESTORE', '+restore ~*', ['RESTORE', PROBE_KEY, 0, 'not-a-payload']),
  exists: permission('EXISTS', '+exists ~*', ['EXISTS', PROBE_KEY]),
  get: permission('GET', '+get ~*', ['GET', PROBE_KEY]),
  select: permission('SELECT', '+select', ['SELECT', 0]),
  // WATCH would stay on the connection, DEL and SET would write: only ACL DRYRUN checks them
  watch: permission('WATCH', '+watch ~*', undefined, ['WATCH', PROBE_KEY]),
  unwatch: permission('UNWATCH', '+unwatch', ['UNWATCH']),
  del: permission('DEL', '+del ~*', undefined, ['DEL', PROBE_KEY]),
  set: permission('SET', '+set ~*', undefined, ['SET', PROBE_KEY, '1']),
  // no replica to wait for: answers at once
  wait: permission('WAIT', '+wait', ['WAIT', 0, 1]),
} as const

/** What every verb reads to load the cluster. */
export const READ_CLUSTER: readonly Permission[] = [PERMISSIONS.clusterNodes, PERMISSIONS.clusterInfo]
/** A run that takes the run lock (fix, del-node, moving slots) names its connections and reads who else is connected (run-lock.ts). */
export const RUN_LOCK: readonly Permission[] = [PERMISSIONS.clientSetname, PERMISSIONS.clientList]
/**
 * A migration source: opens and closes the slot, lists its keys, sends them, samples their
 * size (MEMORY USAGE: byte counts and --max-bytes-per-sec); DUMP and ASKING compare a key that
 * exists on both sides (BUSYKEY) and read a source that only imports the slot (fix).
 */
export const MIGRATION_SOURCE: readonly Permission[] = [PERMISSIONS.clusterSetslot, PERMISSIONS.clusterGetkeysinslot, PERMISSIONS.clusterCountkeysinslot, PERMISSIONS.migrate, PERMISSIONS.memoryUsage, PERMISSIONS.dump, PERMISSIONS.asking]
/**
 * A migration target: MIGRATE logs in as the same user and sends SELECT and RESTORE-ASKING;
 * BUSYKEY compares with DUMP; the close counts keys and raises the target's epoch before it
 * claims the slots with DELSLOTS + ADDSLOTS in one MULTI guarded by a DEL (slot-protocol.ts).
 */
export const MIGRATION_TARGET: readonly Permission[] = [PERMISSIONS.clusterSetslot, PERMISSIONS.clusterBumpepoch, PERMISSIONS.clusterCountkeysinslot, PERMISSIONS.restoreAsking, PERMISSIONS.select, PERMISSIONS.dump, PERMISSIONS.del, PERMISSIONS.asking, PERMISSIONS.clusterAddslots, PERMISSIONS.clusterDelslots, PERMISSIONS.multi, PERMISSIONS.exec]
/**
 * Every master: its command table says which way slots can move (server-info.ts); its DBSIZE
 * is compared with the keys of the slots it owns or imports, in one MULTI, before the run
 * (keys outside their owner stop it: check/scan.ts). Masters outside a move are never told
 * its new owners (they learn by gossip: slot-protocol.ts), so they need no SETSLOT.
 */
export const EVERY_MASTER_OF_A_MIGRATION: readonly Permission[] = [PERMISSIONS.commandInfo, PERMISSIONS.clusterCountkeysinslot, PERMISSIONS.dbsize, PERMISSIONS.multi, PERMISSIONS.exec]

/** Durable moves (durable.ts): the source copies under WATCH and deletes in MULTI/EXEC. */
export const DURABLE_SOURCE: readonly Permission[] = [PERMISSIONS.watch, PERMISSIONS.unwatch, PERMISSIONS.multi, PERMISSIONS.exec, PERMISSIONS.del]
/** ... the target writes a key of slotctl's own and WAITs for its replicas, whose health INFO shows. */
export const DURABLE_TARGET: readonly Permission[] = [PERMISSIONS.multi, PERMISSIONS.exec, PERMISSIONS.set, PERMISSIONS.del, PERMISSIONS.wait, PERMISSIONS.info]

/** A source that migrates atomically (Valkey >= 9): starts, watches and, on Ctrl-C, cancels its jobs. */
export const ATOMIC_MIGRATION_SOURCE: readonly Permission[] = [PERMISSIONS.clusterMigrateslots, PERMISSIONS.clusterGetslotmigrations, PERMISSIONS.clusterCancelslotmigrations]

/**
 * import, on every master that owns slots: existing keys are counted (EXISTS) and compared
 * (DUMP); into a cluster with a password slotctl writes the keys itself (RESTORE), since the
 * cluster's credentials never go to the source (transfer/mover.ts).
 */
export function importNeeds(masters: readonly string[], owners: readonly string[], relay: boolean): Need[] {
  return [
    {addresses: masters, permissions: [...READ_CLUSTER, ...RUN_LOCK]},
    {addresses: owners, permissions: [PERMISSIONS.exists, PERMISSIONS.dump, ...(relay ? [PERMISSIONS.restore] : [])]},
  ]
}

/** Permissions needed on some nodes. */
export interface Need {
  addresses: readonly string[]
  permissions: readonly Permission[]
}

export interface MissingPermissions {
  address: string
  /** Commands the user may not run there, with the rule that grants each. */
  missing: Array<{command: string; rule: string; reason: string}>
  /** Rights only ACL DRYRUN could check, and it was not available to this user. */
  unchecked: string[]
}

/** Which nodes can migrate atomically, and which moves will. */
export interface AtomicMigration {
  /** node ids of servers with atomic slot migration (every read of them asks for its jobs) */
  capableIds: ReadonlySet<string>
  /** the moves of the plan that go through CLUSTER MIGRATESLOTS */
  moves: MigrationPlan['moves']
}

/**
 * What a migration plan needs: sources, targets, and what every master is asked before the run.
 * Atomic moves need their source's MIGRATESLOTS rights on top: a run can still fall back to
 * SETSLOT + MIGRATE for a slot that is already open, so the legacy rights stay.
 */
export function migrationNeeds(snapshot: ClusterSnapshot, plan: MigrationPlan, atomic: AtomicMigration = {capableIds: new Set(), moves: []}, durable = false): Need[] {
  // live addresses only: an address written in a plan file is never connected to
  const address = (id: string) => snapshot.nodes.find((node) => node.id === id)?.address ?? ''
  const masters = mastersOf(snapshot.nodes).filter((node) => !node.failed && snapshot.views[node.id]?.reachable).map((node) => node.address)
  return [
    {addresses: masters, permissions: [...READ_CLUSTER, ...EVERY_MASTER_OF_A_MIGRATION, ...RUN_LOCK]},
    {addresses: [...new Set(plan.moves.map((move) => address(move.sourceId)))].filter(Boolean), permissions: MIGRATION_SOURCE},
    {addresses: [...new Set(plan.moves.map((move) => address(move.targetId)))].filter(Boolean), permissions: MIGRATION_TARGET},
    {addresses: [...atomic.capableIds].map((id) => address(id)).filter(Boolean), permissions: [PERMISSIONS.clusterGetslotmigrations]},
    {addresses: [...new Set(atomic.moves.map((move) => address(move.sourceId)))].filter(Boolean), permissions: ATOMIC_MIGRATION_SOURCE},
    ...(durable
      ? [
          {addresses: [...new Set(plan.moves.map((move) => address(move.sourceId)))].filter(Boolean), permissions: DURABLE_SOURCE},
          {addresses: [...new Set(plan.moves.map((move) => address(move.targetId)))].filter(Boolean), permissions: DURABLE_TARGET},
        ]
      : []),
  ]
}

function byNode(needs: readonly Need[]): Map<string, Permission[]> {
  const nodes = new Map<string, Permission[]>()
  for (const need of needs) {
    for (const address of need.addresses) {
      const list = nodes.get(address) ?? []
      for (const wanted of need.permissions) if (!list.some((known) => known.command === wanted.command)) list.push(wanted)
      nodes.set(address, list)
    }
  }
  return nodes
}

const isDenied = (message: string) => /^NOPERM|unknown command|unknown subcommand/i.test(message)

/** One pipeline of ACL DRYRUNs; undefined when the user may not use ACL DRYRUN (or the server has none). */
async function dryRun(client: Redis, user: string, permissions: readonly Permission[]): Promise<Array<string | undefined> | undefined> {
  const checked = permissions.filter((p) => p.dryrun ?? p.probe)
  const pipeline = client.pipeline().call('ACL', 'DRYRUN', user, 'PING')
  for (const p of checked) pipeline.call('ACL', 'DRYRUN', user, ...((p.dryrun ?? p.probe) as Array<number | string>))
  const [[gate], ...replies] = (await pipeline.exec()) ?? [[new Error('no reply')]]
  if (gate) return undefined
  // "OK", or a sentence saying what is denied; an error means DRYRUN could not judge it
  const verdicts = new Map(checked.map((p, index) => {
    const [error, reply] = replies[index]
    return [p.command, error ? 'probe' : String(reply) === 'OK' ? 'ok' : String(reply)] as const
  }))
  return permissions.map((p) => {
    const verdict = verdicts.get(p.command)
    return verdict === undefined ? 'unchecked' : verdict === 'ok' ? undefined : verdict
  })
}

/** Harmless probes, pipelined: the denial reason, undefined when allowed, 'unchecked' without a probe. */
async function probe(client: Redis, permissions: readonly Permission[]): Promise<Array<string | undefined>> {
  const probed = permissions.filter((p) => p.probe)
  const pipeline = client.pipeline()
  for (const p of probed) pipeline.call(String((p.probe as Array<number | string>)[0]), ...(p.probe as Array<number | string>).slice(1))
  const replies = (await pipeline.exec()) ?? []
  const verdicts = new Map(probed.map((p, index) => {
    const error = replies[index]?.[0]
    return [p.command, error && isDenied(error.message) ? error.message : undefined] as const
  }))
  return permissions.map((p) => (p.probe ? verdicts.get(p.command) : 'unchecked'))
}

/** A queued command's reply: QUEUED, or a redirection (the ACL check came first), means allowed. */
function queuedVerdict(error: Error | null): string | undefined {
  if (!error || /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(error.message)) return undefined
  return isDenied(error.message) ? error.message : UNCHECKED
}

const UNCHECKED = 'unchecked'

/** WATCH cannot be queued (it is refused inside MULTI): it is sent alone, on the throwaway connection. */
const SENT_ALONE = new Set(['WATCH'])

/**
 * The rights without a harmless probe, checked through a transaction on a connection that is
 * dropped afterwards (see the top of this file). MULTI's own reply gates the rest: were it
 * denied, a command sent next would run instead of queueing. EXEC is checked on an empty
 * transaction, before anything is queued.
 */
async function queueProbe(pool: NodePool, address: string, permissions: readonly Permission[]): Promise<Map<string, string | undefined>> {
  const verdicts = new Map<string, string | undefined>()
  const {client, release} = await pool.lease(address)
  try {
    for (const p of permissions.filter((candidate) => SENT_ALONE.has(candidate.command))) {
      verdicts.set(p.command, await client.call(...(p.dryrun as [string, ...Array<number | string>])).then(() => undefined, (error: Error) => queuedVerdict(error)))
    }
    const multi = await client.call('MULTI').then(() => undefined, (error: Error) => (isDenied(error.message) ? error.message : UNCHECKED))
    if (permissions.some((p) => p.command === 'MULTI')) verdicts.set('MULTI', multi)
    if (multi !== undefined) return verdicts
    const exec = await client.call('EXEC').then(() => undefined, (error: Error) => (isDenied(error.message) ? error.message : UNCHECKED))
    if (permissions.some((p) => p.command === 'EXEC')) verdicts.set('EXEC', exec)
    // after a denied EXEC the connection is still inside the (aborted) transaction; else open it again
    if (exec === undefined) await client.call('MULTI')
    const queued = permissions.filter((p) => !['EXEC', 'MULTI'].includes(p.command) && !SENT_ALONE.has(p.command))
    const pipeline = client.pipeline()
    for (const p of queued) pipeline.call(...(p.dryrun as [string, ...Array<number | string>]))
    const replies = (await pipeline.exec()) ?? []
    for (const [index, p] of queued.entries()) verdicts.set(p.command, queuedVerdict(replies[index]?.[0] ?? null))
    return verdicts
  } finally {
    // never EXEC, never reused: what was queued is dropped with the connection
    release(false)
  }
}

async function checkNode(pool: NodePool, user: string, address: string, permissions: readonly Permission[], tryDryRun: boolean): Promise<MissingPermissions & {viaDryRun: boolean}> {
  const client = await pool.client(address)
  const viaDryRun = tryDryRun ? await dryRun(client, user, permissions).catch(() => undefined) : undefined
  let verdicts = viaDryRun
  if (!verdicts) verdicts = await probe(client, permissions)
  else if (verdicts.includes('probe')) {
    // DRYRUN could not judge some (e.g. an unknown subcommand): their probes decide
    const probed = await probe(client, permissions)
    verdicts = verdicts.map((verdict, index) => (verdict === 'probe' ? probed[index] : verdict))
  }
  const known = verdicts
  const unchecked = permissions.filter((p, index) => known[index] === UNCHECKED && p.dryrun)
  if (unchecked.length > 0) {
    const queued = await queueProbe(pool, address, unchecked).catch(() => new Map<string, string | undefined>())
    verdicts = known.map((verdict, index) => (verdict === UNCHECKED && queued.has(permissions[index].command) ? queued.get(permissions[index].command) : verdict))
  }
  const result = {address, missing: [] as MissingPermissions['missing'], unchecked: [] as string[], viaDryRun: Boolean(viaDryRun)}
  for (const [index, verdict] of verdicts.entries()) {
    const {command, rule} = permissions[index]
    if (verdict === UNCHECKED) {
      // not provably there: the run would find out half-way, so it counts as missing
      result.unchecked.push(command)
      result.missing.push({command, reason: 'could not be checked (ACL DRYRUN and MULTI are not allowed)', rule})
    } else if (verdict !== undefined) result.missing.push({command, reason: verdict, rule})
  }
  return result
}

/**
 * Checks every need on every reachable node; returns the nodes where something is missing
 * (an unreachable node is left to the verb, which reports it in its own words). ACL DRYRUN
 * is tried on the first node only: a user refused it there is refused everywhere, and each
 * refusal is an ACL LOG entry.
 */
export async function findMissingPermissions(pool: NodePool, needs: readonly Need[]): Promise<MissingPermissions[]> {
  const user = pool.settings.username ?? 'default'
  const nodes = [...byNode(needs)]
  if (nodes.length === 0) return []
  const [[firstAddress, firstPermissions], ...rest] = nodes
  const first = await checkNode(pool, user, firstAddress, firstPermissions, true).catch(() => undefined)
  const results = await settleLimit(rest, NODE_PARALLELISM, ([address, permissions]) => checkNode(pool, user, address, permissions, Boolean(first?.viaDryRun)))
  return [first, ...results.map((result) => result.value)].flatMap((result) => (result && result.missing.length > 0 ? [{address: result.address, missing: result.missing, unchecked: result.unchecked}] : []))
}

/** One line for all of it: the same missing commands on several nodes are listed once. */
export function describeMissing(user: string, missing: readonly MissingPermissions[]): SlotctlError {
  const groups = new Map<string, {addresses: string[]; rules: string[]}>()
  for (const node of missing) {
    const key = node.missing.map((m) => m.command).join(', ')
    const group = groups.get(key) ?? {addresses: [], rules: node.missing.map((m) => m.rule)}
    group.addresses.push(node.address)
    groups.set(key, group)
  }
  const parts = [...groups].map(([commands, group]) => `${commands} on ${group.addresses.join(', ')}`)
  const rules = [...new Set([...groups.values()].flatMap((group) => group.rules.flatMap((rule) => rule.split(' '))))]
  const atomicOnly = missing.some((node) => node.missing.some((m) => ATOMIC_MIGRATION_SOURCE.some((p) => p.command === m.command)))
  return new SlotctlError(`user '${user}' may not run what this needs: ${parts.join('; ')}`, {
    code: 'E_NOPERM',
    suggestions: [
      `grant it on those nodes, e.g. ACL SETUSER ${user} ${rules.join(' ')} (docs/acl.md lists the rules per verb); nothing was changed`,
      ...(atomicOnly ? ['or move with SETSLOT + MIGRATE instead of atomic slot migration: --legacy-migrate'] : []),
    ],
  })
}

/** Refuses up front (exit 1) when the user lacks any right the run needs. */
export async function refuseMissingPermissions(pool: NodePool, needs: readonly Need[]): Promise<void> {
  const missing = await findMissingPermissions(pool, needs)
  if (missing.length > 0) throw describeMissing(pool.settings.username ?? 'default', missing)
}

/** Shorthand for callers that know the nodes: the same permissions on each. */
export function need(addresses: readonly string[], ...permissions: ReadonlyArray<Permission | readonly Permission[]>): Need {
  return {addresses, permissions: permissions.flat() as Permission[]}
}
