/**
 * The standalone server `import` reads from: what it holds per db, and the reasons to refuse
 * it (a cluster node, keys spread over several dbs, a read-only replica asked to give its keys
 * away).
 */
import type {Redis} from 'ioredis'

import {type NodeAddress, formatAddress} from '../cluster/address.js'
import type {NodePool} from '../cluster/connection.js'
import {SlotctlError, errorMessage, usageError} from '../core/errors.js'
import {parseInfo} from '../cluster/topology.js'

export interface DbKeys {
  db: number
  keys: number
  expires: number
}

export interface SourceInfo {
  address: string
  /** the db import reads */
  db: number
  keys: number
  keysWithExpiry: number
  role: string
  /** every non-empty db */
  dbs: DbKeys[]
  version: string
}

export function keyspaceOf(info: Record<string, string>): DbKeys[] {
  const dbs: DbKeys[] = []
  for (const [field, value] of Object.entries(info)) {
    const db = /^db(\d+)$/.exec(field)
    if (!db) continue
    const keys = Number(/keys=(\d+)/.exec(value)?.[1] ?? 0)
    const expires = Number(/expires=(\d+)/.exec(value)?.[1] ?? 0)
    if (keys > 0) dbs.push({db: Number(db[1]), expires, keys})
  }
  return dbs.sort((a, b) => a.db - b.db)
}

/** Server name and version: valkey_version when present (Valkey also reports redis_version 7.2.4). */
export function serverVersionOf(info: Record<string, string>): string {
  if (info.valkey_version) return `valkey ${info.valkey_version}`
  return `${info.server_name ?? 'redis'} ${info.redis_version ?? '?'}`
}

export interface InspectOptions {
  /** --from-db; undefined: db 0, and keys elsewhere are refused */
  db?: number
  /** keys will be deleted from the source (not --copy) */
  move: boolean
}

function sourceAuthError(address: string, message: string): SlotctlError {
  return new SlotctlError(`authentication failed at the source ${address}: ${/NOAUTH/.test(message) ? 'it requires a password' : 'wrong user name or password'}`, {
    code: 'E_AUTH',
    suggestions: ['give the source\'s password with --from-password (or SLOTCTL_FROM_AUTH, or in --from redis://:PASSWORD@HOST:PORT), its ACL user with --from-user'],
  })
}

/**
 * The source's client from the pool, authenticated by an explicit AUTH: ioredis's own AUTH at
 * connect closes the connection on a wrong password, and the next command would only say
 * "Stream isn't writeable". Only the source's own credentials (--from URL, --from-password,
 * --from-user) are sent: the cluster's never go to another server.
 */
export async function connectSource(pool: NodePool, address: NodeAddress): Promise<Redis> {
  const {password, username} = address
  const client = await pool.client({...address, password: '', username: ''})
  if (!password) return client
  try {
    await client.call('AUTH', ...(username ? [username, password] : [password]))
  } catch (error) {
    const message = errorMessage(error)
    // a password the source does not need is harmless
    if (/without any password configured|no password is set/i.test(message)) return client
    throw sourceAuthError(formatAddress(address), message)
  }
  return client
}

export async function inspectSource(client: Redis, address: string, options: InspectOptions): Promise<SourceInfo> {
  let info: Record<string, string>
  try {
    info = parseInfo(String(await client.info()))
  } catch (error) {
    if (/NOAUTH|WRONGPASS|invalid password|invalid username-password/i.test(errorMessage(error))) throw sourceAuthError(address, errorMessage(error))
    throw new SlotctlError(`cannot read INFO from the source ${address}: ${errorMessage(error)}`, {code: 'E_UNREACHABLE'})
  }
  if (info.cluster_enabled === '1') {
    throw new SlotctlError(`the source ${address} is a cluster node: import reads a standalone server`, {
      code: 'E_SOURCE_IS_CLUSTER',
      suggestions: ['to move slots inside a cluster use reshard; to copy a whole cluster, back it up (slotctl backup) and restore it (slotctl restore --into)'],
    })
  }
  const dbs = keyspaceOf(info)
  const db = options.db ?? 0
  if (options.db === undefined) {
    const others = dbs.filter((entry) => entry.db !== 0)
    if (others.length > 0) {
      throw new SlotctlError(`the source ${address} has keys in ${others.map((entry) => `db ${entry.db} (${entry.keys})`).join(', ')}, and a cluster has only db 0`, {
        code: 'E_SOURCE_DBS',
        exitCode: 2,
        suggestions: ['import one db at a time with --from-db N (keys of different dbs with the same name would collide)'],
      })
    }
  }
  const role = info.role === 'slave' ? 'replica' : (info.role ?? 'master')
  if (role === 'replica' && options.move) {
    throw new SlotctlError(`the source ${address} is a replica: its keys cannot be moved away, only copied`, {
      code: 'E_SOURCE_REPLICA',
      exitCode: 2,
      suggestions: ['add --copy, or import from its master'],
    })
  }
  const selected = dbs.find((entry) => entry.db === db)
  return {address, db, dbs, keys: selected?.keys ?? 0, keysWithExpiry: selected?.expires ?? 0, role, version: serverVersionOf(info)}
}

/** SELECT the db to read; an index the server does not have is bad input. */
export async function selectDb(client: Redis, address: string, db: number): Promise<void> {
  if (db === 0) return
  try {
    await client.select(db)
  } catch (error) {
    if (/out of range|invalid/i.test(errorMessage(error))) throw usageError(`--from-db ${db}: the source ${address} has no db ${db}`)
    throw new SlotctlError(`${address} refused SELECT ${db}: ${errorMessage(error)}`, {code: 'E_REDIS'})
  }
}
