/**
 * A fake NodePool for unit tests of the engine's decisions (no server): it hands out
 * ioredis-like clients (call, callBuffer, pipeline, info, ping) that record every command
 * and answer from a small in-memory cluster: each node's own view of the slot owners, its
 * IMPORTING/MIGRATING markers, its keys, its config epoch, and its replicas.
 *
 * Only what slot-protocol.ts, fix/apply.ts and the legacy mover send is modelled, with the
 * refusals of redis 7.0 src/cluster.c and valkey 8.0 src/cluster_legacy.c that those
 * decisions rely on (SETSLOT MIGRATING off a non-owner, NODE away from a node holding keys,
 * ADDSLOTS on a busy slot, ...). The only gossip is the PONG a master broadcasts when it
 * takes a slot it imported (broadcastClaims); otherwise a node learns an owner only when told.
 * Valkey (>= 8) hands each SETSLOT to its primary's replicas before the primary applies it,
 * and the fake records what the primary claimed at that moment (`handDowns`). Anything else
 * is answered "unknown command", so a command the model lacks shows up as a failure.
 */
import {DEFAULT_CONNECTION, type NodePool, type Reply} from '../../src/lib/cluster/connection.js'
import type {EncodedBatch} from '../../src/lib/cluster/raw-pipeline.js'
import {SlotctlError} from '../../src/lib/core/errors.js'
import {keySlot, toRanges} from '../../src/lib/core/slots.js'
import {tagForSlot} from '../../src/lib/migrate/durable.js'

export type ServerKind = 'redis' | 'valkey'

export interface FakeNodeSpec {
  /** a short name: the node's id is derived from it, and the command log uses it */
  name: string
  slots?: number[]
  /** the master's name, for a replica */
  replicaOf?: string
  epoch?: number
}

type Arg = Buffer | number | string
type Value = Buffer | Error | Value[] | number | string | null

/** A command as the fake received it, ids shown as node names ("target CLUSTER SETSLOT 7 NODE target"). */
export interface SentCommand {
  node: string
  lane: number | string
  text: string
}

/** A SETSLOT NODE a Valkey primary handed to a replica: whether the primary already owned the slot in its own view then. */
export interface HandDown {
  replica: string
  slot: number
  primaryClaimed: boolean
}

/** The id a name stands for: 40 hex digits, as real ids are. */
export function fakeId(name: string): string {
  return Buffer.from(name).toString('hex').padEnd(40, '0').slice(0, 40)
}

class FakeNode {
  readonly id: string
  masterId: string | null = null
  configEpoch: number
  currentEpoch = 0
  /** this node's own view: slot → owner id */
  readonly owners = new Map<number, string>()
  readonly importing = new Map<number, string>()
  readonly migrating = new Map<number, string>()
  readonly data = new Map<string, string>()

  constructor(
    readonly name: string,
    readonly address: string,
    epoch: number,
  ) {
    this.id = fakeId(name)
    this.configEpoch = epoch
  }

  keysIn(slot: number): string[] {
    return [...this.data.keys()].filter((key) => keySlot(key) === slot)
  }
}

class CommandError extends Error {}

const refuse = (message: string) => new CommandError(message)

export class FakeCluster {
  readonly log: SentCommand[] = []
  readonly handDowns: HandDown[] = []
  private readonly nodes: FakeNode[] = []
  /** commands answered with an error instead of being run: (node name, command text) → message */
  private readonly refusals: Array<(node: string, text: string) => string | undefined> = []
  private readonly unreachable = new Set<string>()
  private readonly offBus = new Set<string>()
  private readonly drops: Array<{name: string; pattern: RegExp; nth: number}> = []
  /** what a Redis node answers in INFO server (7.0.15: a version with redis#12564) */
  redisVersion = '7.2.4'

  constructor(
    readonly server: ServerKind,
    specs: readonly FakeNodeSpec[],
  ) {
    for (const [i, spec] of specs.entries()) this.nodes.push(new FakeNode(spec.name, `127.0.0.1:${7000 + i}`, spec.epoch ?? i + 1))
    for (const spec of specs) {
      if (spec.replicaOf) this.node(spec.name).masterId = this.node(spec.replicaOf).id
      for (const slot of spec.slots ?? []) for (const node of this.nodes) node.owners.set(slot, fakeId(spec.name))
    }
    const top = Math.max(...this.nodes.map((node) => node.configEpoch))
    for (const node of this.nodes) node.currentEpoch = top
  }

  node(name: string): FakeNode {
    const found = this.nodes.find((node) => node.name === name)
    if (!found) throw new Error(`no fake node ${name}`)
    return found
  }

  address(name: string): string {
    return this.node(name).address
  }

  /** {id, address} of a node, as SlotEndpoint and MasterEvidence take it. */
  endpoint(name: string): {id: string; address: string} {
    const node = this.node(name)
    return {address: node.address, id: node.id}
  }

  /** `count` keys of `slot` named `${prefix}0:{tag}`..., stored on `name` (the hash tag puts them in the slot). */
  addKeys(name: string, slot: number, count: number, prefix = 'k'): void {
    for (let i = 0; i < count; i++) this.node(name).data.set(`${prefix}${i}:{${tagForSlot(slot)}}`, `v${i}`)
  }

  keys(name: string, slot: number): number {
    return this.node(name).keysIn(slot).length
  }

  /** Who owns `slot` in `name`'s own view (its name), or null. */
  ownerIn(name: string, slot: number): string | null {
    const id = this.node(name).owners.get(slot)
    return id ? this.nameOf(id) : null
  }

  markers(name: string, slot: number): {importing?: string; migrating?: string} {
    const node = this.node(name)
    const importing = node.importing.get(slot)
    const migrating = node.migrating.get(slot)
    return {...(importing ? {importing: this.nameOf(importing)} : {}), ...(migrating ? {migrating: this.nameOf(migrating)} : {})}
  }

  /** Opens `slot` from `source` to `target` as a run would have: IMPORTING at the target, MIGRATING at the source. */
  open(slot: number, source: string, target: string): void {
    this.node(target).importing.set(slot, fakeId(source))
    this.node(source).migrating.set(slot, fakeId(target))
  }

  /** Answers commands whose text matches with an error, e.g. refuseWhen('target', /ADDSLOTS 7$/, 'ERR ...'). */
  refuseWhen(name: string, pattern: RegExp, message: string): void {
    this.refusals.push((node, text) => (node === name && pattern.test(text) ? message : undefined))
  }

  /** The node drops the connection at the `nth` command matching, once (Valkey 8 drops its clients as it turns replica). */
  dropOnce(name: string, pattern: RegExp, nth = 1): void {
    this.drops.push({name, nth, pattern})
  }

  /** Every connection to the node fails from now on, as to a node that is down. */
  takeDown(name: string): void {
    this.unreachable.add(name)
  }

  /** The node's cluster-bus links are down: it hears no broadcast (clients still reach it). */
  cutOffBus(name: string): void {
    this.offBus.add(name)
  }

  /** The log, as lines "node COMMAND ..." (optionally only those matching). */
  sent(pattern?: RegExp): string[] {
    return this.log.map((entry) => `${entry.node} ${entry.text}`).filter((line) => !pattern || pattern.test(line))
  }

  pool(): NodePool {
    return new FakePool(this) as unknown as NodePool
  }

  nameOf(id: string): string {
    return this.nodes.find((node) => node.id === id)?.name ?? id
  }

  nodeAt(address: string): FakeNode {
    const node = this.nodes.find((candidate) => candidate.address === address)
    if (!node || this.unreachable.has(node.name)) throw new SlotctlError(`cannot connect to ${address}: connection refused (is the server running there?)`, {code: 'E_UNREACHABLE'})
    return node
  }

  /** The node behind an open connection; one taken down since fails it as ioredis does. */
  connected(address: string): FakeNode {
    const node = this.nodes.find((candidate) => candidate.address === address)!
    if (this.unreachable.has(node.name)) throw new Error('Connection is closed.')
    return node
  }

  /** Logs a command as the node receives it; returns its words. */
  receive(node: FakeNode, lane: number | string, args: readonly Arg[]): string[] {
    const words = args.map((arg) => (Buffer.isBuffer(arg) ? arg.toString() : String(arg)))
    this.log.push({lane, node: node.name, text: words.map((word) => (/^[0-9a-f]{40}$/.test(word) ? this.nameOf(word) : word)).join(' ')})
    return words
  }

  /** Runs a received command: its reply, or the error reply it gets. */
  answer(node: FakeNode, words: string[]): Value {
    const text = words.map((word) => (/^[0-9a-f]{40}$/.test(word) ? this.nameOf(word) : word)).join(' ')
    const drop = this.drops.find((rule) => rule.name === node.name && rule.pattern.test(text) && --rule.nth === 0)
    // thrown, not answered: the whole pipeline fails, as ioredis fails it when the socket closes
    if (drop) throw new Error('Command aborted due to connection close')
    const refused = this.refusals.map((rule) => rule(node.name, text)).find(Boolean)
    if (refused) return refuse(refused)
    try {
      return this.execute(node, words)
    } catch (error) {
      if (error instanceof CommandError) return error
      throw error
    }
  }

  private execute(node: FakeNode, words: string[]): Value {
    const [name, ...rest] = words
    switch (name.toUpperCase()) {
      case 'CLUSTER':
        return this.cluster(node, rest)
      case 'INFO':
        return this.info(node, rest[0])
      case 'COMMAND':
        // COMMAND INFO cluster|slot-stats cluster|migrateslots cluster|migration
        return rest.slice(1).map((command) => (this.server === 'valkey' && command === 'cluster|slot-stats' ? [command] : null))
      case 'MIGRATE':
        return this.migrate(node, rest)
      case 'MEMORY':
        return 64
      case 'ASKING':
        return 'OK'
      case 'GET':
        return node.data.get(rest[0]) ?? null
      case 'DEL':
        return rest.filter((key) => node.data.delete(key)).length
      case 'PING':
        return 'PONG'
      default:
        throw refuse(`ERR unknown command '${name}'`)
    }
  }

  private cluster(node: FakeNode, [sub, ...args]: string[]): Value {
    const slot = Number(args[0])
    switch (sub.toUpperCase()) {
      case 'NODES':
        return this.nodesText(node)
      case 'INFO':
        return `cluster_state:ok\r\ncluster_current_epoch:${node.currentEpoch}\r\ncluster_my_epoch:${node.configEpoch}\r\n`
      case 'MYID':
        return node.id
      case 'COUNTKEYSINSLOT':
        return node.keysIn(slot).length
      case 'GETKEYSINSLOT':
        return node.keysIn(slot).slice(0, Number(args[1]))
      case 'BUMPEPOCH':
        return this.bumpEpoch(node) ? `BUMPED ${node.configEpoch}` : `STILL ${node.configEpoch}`
      case 'ADDSLOTS':
        if (node.owners.has(slot)) throw refuse(`ERR Slot ${slot} is already busy`)
        node.owners.set(slot, node.id)
        node.importing.delete(slot)
        return 'OK'
      case 'DELSLOTS':
        if (!node.owners.has(slot)) throw refuse(`ERR Slot ${slot} is already unassigned`)
        node.owners.delete(slot)
        return 'OK'
      case 'SETSLOT':
        return this.setslot(node, slot, args[1].toUpperCase(), args[2])
      default:
        throw refuse(`ERR unknown subcommand '${sub}'`)
    }
  }

  /** CLUSTER BUMPEPOCH (and the bump of SETSLOT NODE on an imported slot): only when not already the greatest. */
  private bumpEpoch(node: FakeNode): boolean {
    const greatest = Math.max(node.currentEpoch, ...this.nodes.map((other) => other.configEpoch))
    if (node.configEpoch !== 0 && node.configEpoch === greatest) return false
    node.currentEpoch++
    node.configEpoch = node.currentEpoch
    return true
  }

  private setslot(node: FakeNode, slot: number, how: string, peer: string | undefined): Value {
    if (node.masterId) throw refuse('ERR Please use SETSLOT only with masters.')
    if (peer !== undefined && !this.nodes.some((other) => other.id === peer)) throw refuse(`ERR I don't know about node ${peer}`)
    const replicas = this.server === 'valkey' ? this.nodes.filter((other) => other.masterId === node.id) : []
    this.checkSetslot(node, slot, how, peer)
    // Valkey >= 8: the replicas apply it first, the primary once they acknowledged
    for (const replica of replicas) {
      if (how === 'NODE') this.handDowns.push({primaryClaimed: node.owners.get(slot) === node.id, replica: replica.name, slot})
      this.applySetslot(replica, slot, how, peer)
    }
    this.applySetslot(node, slot, how, peer)
    return 'OK'
  }

  private checkSetslot(node: FakeNode, slot: number, how: string, peer: string | undefined): void {
    const owner = node.owners.get(slot)
    if (how === 'MIGRATING' && owner !== node.id) throw refuse(`ERR I'm not the owner of hash slot ${slot}`)
    if (how === 'IMPORTING' && owner === node.id) throw refuse(`ERR I'm already the owner of hash slot ${slot}`)
    if (how === 'NODE' && owner === node.id && peer !== node.id && node.keysIn(slot).length > 0) {
      throw refuse(`ERR Can't assign hashslot ${slot} to a different node while I still hold keys for this hash slot.`)
    }
    if (!['IMPORTING', 'MIGRATING', 'NODE', 'STABLE'].includes(how)) throw refuse('ERR Invalid CLUSTER SETSLOT action or number of arguments')
  }

  private applySetslot(node: FakeNode, slot: number, how: string, peer: string | undefined): void {
    if (how === 'IMPORTING') node.importing.set(slot, peer!)
    else if (how === 'MIGRATING') node.migrating.set(slot, peer!)
    else if (how === 'STABLE') {
      node.importing.delete(slot)
      node.migrating.delete(slot)
    } else {
      if (peer !== node.id) node.migrating.delete(slot)
      const imported = peer === node.id && node.importing.has(slot)
      if (imported) {
        node.importing.delete(slot)
        if (!node.masterId) this.bumpEpoch(node)
      }
      node.owners.set(slot, peer!)
      if (imported && !node.masterId) this.broadcastClaims(node)
    }
  }

  /**
   * The PONG a master broadcasts after taking a slot it imported: every other node rebinds
   * each slot it claims whose owner there has a lower config epoch, except a slot it imports
   * (redis 7.0 clusterUpdateSlotsConfigWith); a node that owned such a slot itself drops its
   * keys there (a dirty slot). Epochs are compared as they are, not as each node last heard
   * them: the fake keeps no per-node view of epochs.
   */
  private broadcastClaims(claimant: FakeNode): void {
    const epochOf = (id: string | undefined) => this.nodes.find((other) => other.id === id)?.configEpoch ?? -1
    for (const other of this.nodes) {
      if (other === claimant || this.unreachable.has(other.name) || this.offBus.has(other.name)) continue
      for (const [slot, owner] of claimant.owners) {
        const seen = other.owners.get(slot)
        if (owner !== claimant.id || seen === claimant.id || other.importing.has(slot) || epochOf(seen) >= claimant.configEpoch) continue
        if (seen === other.id) for (const key of other.keysIn(slot)) other.data.delete(key)
        other.owners.set(slot, claimant.id)
      }
    }
  }

  /** MIGRATE host port "" 0 timeout [COPY] [REPLACE] [AUTH ...] KEYS key...: the target must own or import the slot. */
  private migrate(source: FakeNode, args: string[]): Value {
    const target = this.nodeAt(`${args[0]}:${args[1]}`)
    const keys = args.slice(args.indexOf('KEYS') + 1)
    const present = keys.filter((key) => source.data.has(key))
    if (present.length === 0) return 'NOKEY'
    for (const key of present) {
      const slot = keySlot(key)
      if (target.owners.get(slot) !== target.id && !target.importing.has(slot)) throw refuse(`ERR Target instance replied with error: MOVED ${slot} ${target.address}`)
      if (target.data.has(key) && !args.includes('REPLACE')) throw refuse('ERR Target instance replied with error: BUSYKEY Target key name already exists.')
      target.data.set(key, source.data.get(key)!)
      if (!args.includes('COPY')) source.data.delete(key)
    }
    return 'OK'
  }

  private info(node: FakeNode, section = ''): string {
    if (/^server$/i.test(section)) return this.server === 'valkey' ? 'server_name:valkey\r\nvalkey_version:8.0.2\r\nredis_version:7.2.4\r\n' : `redis_version:${this.redisVersion}\r\n`
    const replicas = this.nodes.filter((other) => other.masterId === node.id)
    return `role:${node.masterId ? 'slave' : 'master'}\r\nconnected_slaves:${replicas.length}\r\n`
  }

  /** CLUSTER NODES of a node, without logging it (to build a test's snapshot). */
  clusterNodes(name: string): string {
    return this.nodesText(this.node(name))
  }

  /** CLUSTER NODES as `me` sees the cluster: its own markers only, as real servers print them. */
  private nodesText(me: FakeNode): string {
    return this.nodes
      .map((node) => {
        const [host, port] = node.address.split(':')
        const flags = `${node === me ? 'myself,' : ''}${node.masterId ? 'slave' : 'master'}`
        const owned = [...me.owners].filter(([, owner]) => owner === node.id).map(([slot]) => slot)
        const ranges = toRanges(owned).map(([start, end]) => (start === end ? `${start}` : `${start}-${end}`))
        const markers = node === me ? [...[...me.migrating].map(([slot, peer]) => `[${slot}->-${peer}]`), ...[...me.importing].map(([slot, peer]) => `[${slot}-<-${peer}]`)] : []
        return [node.id, `${host}:${port}@${Number(port) + 10_000}`, flags, node.masterId ?? '-', 0, 0, node.configEpoch, 'connected', ...ranges, ...markers].join(' ')
      })
      .join('\n')
  }
}

/** An ioredis-like client of one node and lane: replies come from the fake cluster, MULTI queues until EXEC. */
class FakeClient {
  private queued: string[][] | undefined
  private aborted = false
  private asking = false

  constructor(
    private readonly cluster: FakeCluster,
    private readonly address: string,
    private readonly lane: number | string,
  ) {}

  /**
   * MULTI queues the commands that follow (logged as they arrive) and EXEC runs them. A keyed
   * command the node would redirect (GET of a slot it neither owns nor imports after
   * ASKING, or any on a replica) is refused with MOVED and aborts the transaction, as the
   * servers' processCommand does (flagTransaction).
   */
  private reply(args: readonly Arg[]): Value {
    const node = this.cluster.connected(this.address)
    const words = this.cluster.receive(node, this.lane, args)
    const name = words[0].toUpperCase()
    if (name === 'ASKING' && !this.queued) this.asking = true
    if (name === 'MULTI') {
      this.queued = []
      this.aborted = false
      return 'OK'
    }
    if (name === 'EXEC') {
      const queued = this.queued ?? []
      this.queued = undefined
      this.asking = false
      if (this.aborted) return refuse('EXECABORT Transaction discarded because of previous errors.')
      return queued.map((command) => this.cluster.answer(node, command))
    }
    if (this.queued) {
      if ((name === 'GET' || name === 'DEL') && !this.serves(node, keySlot(words[1]))) {
        this.aborted = true
        return refuse(`MOVED ${keySlot(words[1])} elsewhere`)
      }
      this.queued.push(words)
      return 'QUEUED'
    }
    if (name !== 'ASKING') this.asking = false
    return this.cluster.answer(node, words)
  }

  private serves(node: FakeNode, slot: number): boolean {
    if (node.masterId !== null) return false
    return node.owners.get(slot) === node.id || (this.asking && node.importing.has(slot))
  }

  async call(...args: Arg[]): Promise<unknown> {
    return settle(this.reply(args), false)
  }

  async callBuffer(...args: Arg[]): Promise<unknown> {
    return settle(this.reply(args), true)
  }

  async info(section?: string): Promise<unknown> {
    return this.call('INFO', ...(section ? [section] : []))
  }

  async ping(): Promise<unknown> {
    return this.call('PING')
  }

  pipeline(): FakePipeline {
    return new FakePipeline((args) => this.reply(args))
  }
}

/** A pipeline: commands run in order at exec(), each reply as [error, value]. */
class FakePipeline {
  private readonly commands: Array<{args: Arg[]; buffers: boolean}> = []

  constructor(private readonly reply: (args: readonly Arg[]) => Value) {}

  call(...args: Arg[]): this {
    this.commands.push({args, buffers: false})
    return this
  }

  callBuffer(...args: Arg[]): this {
    this.commands.push({args, buffers: true})
    return this
  }

  async exec(): Promise<Reply[]> {
    await Promise.resolve()
    return this.commands.map(({args, buffers}): Reply => {
      const value = this.reply(args)
      return value instanceof Error ? [value, null] : [null, asClientSees(value, buffers)]
    })
  }
}

/** An error reply rejects, as with ioredis; bulk strings come back as Buffers from callBuffer. */
async function settle(value: Value, buffers: boolean): Promise<unknown> {
  await Promise.resolve()
  if (value instanceof Error) throw value
  return asClientSees(value, buffers)
}

function asClientSees(value: Value, buffers: boolean): unknown {
  if (Array.isArray(value)) return value.map((item) => (item instanceof Error ? item : asClientSees(item, buffers)))
  if (buffers && typeof value === 'string') return Buffer.from(value)
  if (!buffers && Buffer.isBuffer(value)) return value.toString()
  return value
}

/** What the engine uses of NodePool: clients per node and lane, reads, leases, forget. */
class FakePool {
  readonly settings = DEFAULT_CONNECTION
  readonly readTimeoutMs = 1000
  readonly passwordNotNeeded = new Set<string>()
  /** addresses whose clients the code under test dropped */
  readonly forgotten: string[] = []
  private leases = 0
  /** one client per node and lane, as NodePool keeps them: MULTI state is per connection */
  private readonly clients = new Map<string, FakeClient>()

  constructor(private readonly cluster: FakeCluster) {}

  async client(address: string, lane: number | string = 0): Promise<FakeClient> {
    this.cluster.nodeAt(address)
    const key = `${address}#${lane}`
    let client = this.clients.get(key)
    if (!client) this.clients.set(key, (client = new FakeClient(this.cluster, address, lane)))
    return client
  }

  async read<T>(address: string, read: (client: FakeClient) => Promise<T>): Promise<T> {
    return read(await this.client(address))
  }

  async readMany(address: string, batch: EncodedBatch | ReadonlyArray<ReadonlyArray<number | string>>): Promise<Reply[]> {
    const pipeline = (await this.client(address)).pipeline()
    // the commands an encoded batch stands for: the fake reads words, not RESP
    for (const command of 'bytes' in batch ? batch.commands() : batch) pipeline.call(...command)
    return pipeline.exec()
  }

  async lease(address: string): Promise<{client: FakeClient; release: (reuse?: boolean) => void}> {
    return {client: await this.client(address, `lease${++this.leases}`), release: () => undefined}
  }

  isHung(): boolean {
    return false
  }

  forget(address: string): void {
    this.forgotten.push(address)
    for (const key of this.clients.keys()) if (key.startsWith(`${address}#`)) this.clients.delete(key)
  }

  async closeAll(): Promise<void> {}
}

/** The log lines of a claim transaction on `node` (slot-protocol.ts claimOnTarget): BUMPEPOCH, then DELSLOTS + ADDSLOTS per slot. */
export function claimLines(node: string, slots: readonly number[], heraldInside?: {slot: number; targetName: string}): string[] {
  const herald = heraldInside ? [`${node} CLUSTER SETSLOT ${heraldInside.slot} NODE ${heraldInside.targetName}`] : []
  return [`${node} MULTI`, `${node} CLUSTER BUMPEPOCH`, ...slots.flatMap((slot) => [`${node} CLUSTER DELSLOTS ${slot}`, `${node} CLUSTER ADDSLOTS ${slot}`]), ...herald, `${node} EXEC`]
}
