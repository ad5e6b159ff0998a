/**
 * Every error code slotctl can print (a SlotctlError's code, or an `errors` entry of a result),
 * with the exit code it ends the run with when it stops the verb, and its meaning in one line.
 * docs/error-codes.md is generated from this table (npm run docs; test/unit/error-codes.test.ts
 * fails when they differ). Codes next to each other with the same meaning and exit code share
 * one row there.
 */

/** Process exit codes, documented in docs/error-codes.md and in every command's help. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  checkProblems: 3,
  needsConfirmation: 4,
  interrupted: 130,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

export interface ErrorCodeEntry {
  /** the exit code when this error stops the verb (a thrower may still pass another) */
  exitCode: ExitCodeValue
  /** one line: what happened and, where it helps, what to do */
  meaning: string
}

export const ERROR_CODES = {
  E_USAGE: {exitCode: ExitCode.usage, meaning: 'bad input: malformed address or flag value, missing argument, unknown verb'},
  E_UNKNOWN_NODE: {exitCode: ExitCode.usage, meaning: 'no node of the cluster has that id (prefix)'},
  E_AMBIGUOUS_NODE: {exitCode: ExitCode.usage, meaning: 'the id prefix matches several nodes'},
  E_PLAN: {exitCode: ExitCode.usage, meaning: 'the plan file names a node without an address'},
  E_NEEDS_CONFIRMATION: {exitCode: ExitCode.needsConfirmation, meaning: 'a change needs confirmation, and there is no terminal and no `--yes`'},
  E_CANCELLED: {exitCode: ExitCode.failed, meaning: 'the confirmation was answered no; nothing changed'},
  E_INTERRUPTED: {exitCode: ExitCode.interrupted, meaning: 'Ctrl-C at a prompt; nothing changed'},
  E_LOCKED: {exitCode: ExitCode.failed, meaning: 'another slotctl run is changing the cluster (`--ignore-lock` goes on anyway)'},
  E_LOCK_STALE: {exitCode: ExitCode.failed, meaning: 'a slotctl lock marker that no live run renews (a stopped slotctl, or a client that named itself like one) holds the cluster; the hint gives `--ignore-lock` and the `CLIENT KILL ID` that removes it (a `--dry-run` only warns)'},
  E_CLUSTER_CHANGED: {exitCode: ExitCode.failed, meaning: 'the cluster read under the run lock is not the one the run decided on (its plan, fix\'s evidence, del-node\'s checks): another run changed it meanwhile; nothing changed'},
  E_FAILED: {exitCode: ExitCode.failed, meaning: 'anything else that failed'},
  E_UNREACHABLE: {exitCode: ExitCode.failed, meaning: 'a node did not answer (connect refused, timed out); in `call`\'s `errors`, a node the command was not run on'},
  E_HUNG: {exitCode: ExitCode.failed, meaning: 'a node accepts connections but did not answer within `--read-timeout`'},
  E_SKIPPED: {exitCode: ExitCode.failed, meaning: '(internal) a node slotctl did not read on purpose: the master `failover --force` bypasses'},
  E_AUTH: {exitCode: ExitCode.failed, meaning: 'the node wants a password (or another one): `-a`/`REDISCLI_AUTH`, `--user`'},
  E_TLS: {exitCode: ExitCode.failed, meaning: 'TLS failed (client certificate required, server certificate not verified, a plain port with `--tls` or a TLS port without)'},
  E_NOPERM: {exitCode: ExitCode.failed, meaning: 'the ACL user may not run a command the change needs (listed per node; nothing changed)'},
  E_NOT_CLUSTER: {exitCode: ExitCode.failed, meaning: 'the node is not cluster-enabled'},
  E_PROTOCOL: {exitCode: ExitCode.failed, meaning: 'a node answered a cluster command with an error'},
  E_REDIS: {exitCode: ExitCode.failed, meaning: 'a node refused a command of create or add/del-node'},
  E_INTERNAL: {exitCode: ExitCode.failed, meaning: 'a slotctl bug (a connection used after closing)'},
  E_UNSAFE_CLUSTER: {exitCode: ExitCode.failed, meaning: 'refusing to move slots (or to import, back up, restore): open slots, failed masters, uncovered slots or disagreement (see `check`)'},
  E_STALE_PLAN: {exitCode: ExitCode.failed, meaning: 'the cluster changed since the plan was made'},
  E_MIGRATION: {exitCode: ExitCode.failed, meaning: 'a node refused a step of a slot\'s migration, or a `MIGRATE` of import or restore failed'},
  E_BUSYKEY: {exitCode: ExitCode.failed, meaning: 'a key exists at the target with a different value (`--replace` overwrites)'},
  E_LARGE_KEY: {exitCode: ExitCode.failed, meaning: 'a key could not be moved even alone with 4x the timeout'},
  E_VERIFY: {exitCode: ExitCode.failed, meaning: 'after a move, a node\'s view does not give the slot to its target'},
  E_TARGET_DOWN: {exitCode: ExitCode.failed, meaning: 'a MIGRATE failed and the target does not answer: the slot is left open for fix or `--resume`'},
  E_BIG_KEY: {exitCode: ExitCode.failed, meaning: 'a key in the slots to move would block its master longer than half of cluster-node-timeout (`--allow-big-keys`)'},
  E_REPLICAS: {exitCode: ExitCode.failed, meaning: 'a target\'s replica is down, hung or behind (or answered `NOREPLICAS`), or the target has fewer replicas than `--min-replica-acks`: the wave stops before anything of it moves, naming the replica'},
  E_REPLICA_ACK: {exitCode: ExitCode.failed, meaning: 'the target\'s replicas did not acknowledge copied keys within `--replica-wait`: those keys stay at the source, the slot stays open (or, `--durability server`, the servers moved slots the replicas do not all hold)'},
  E_REPLICA_VIEW: {exitCode: ExitCode.failed, meaning: 'a replica of the target does not give it the closed slots in its own view, or does not know its raised epoch, within `--replica-wait`'},
  E_HOT_KEYS: {exitCode: ExitCode.failed, meaning: 'clients changed a slot\'s keys during every copy (12 tries): nothing of them was deleted at the source; resume when writes calm down'},
  E_SLOT_MIGRATION_RUNNING: {exitCode: ExitCode.failed, meaning: 'fix refuses while an atomic slot migration (Valkey 9) is in progress'},
  E_CLUSTER_UNHEALTHY: {exitCode: ExitCode.failed, meaning: 'add-node refuses a cluster with errors'},
  E_NODE_NOT_EMPTY: {exitCode: ExitCode.failed, meaning: 'the node to add has keys, slots or knows other nodes'},
  E_NODES_UNFIT: {exitCode: ExitCode.failed, meaning: 'create: a node is unreachable, not cluster-enabled or not empty'},
  E_HALF_FORMED: {exitCode: ExitCode.failed, meaning: 'create: the nodes form part of a cluster already; the hint says how to finish'},
  E_FUNCTIONS: {exitCode: ExitCode.failed, meaning: 'add-node: the new node has function libraries that differ from the cluster\'s, or they could not be copied'},
  E_MASTER_FAILED: {exitCode: ExitCode.failed, meaning: 'add-node `--master-id` names a master flagged fail'},
  E_NO_MASTER: {exitCode: ExitCode.failed, meaning: 'no live master to replicate, or to take the replicas of a removed node'},
  E_NODE_HAS_SLOTS: {exitCode: ExitCode.failed, meaning: 'del-node: the node owns slots (`--drain`; `--accept-data-loss` for a dead one)'},
  E_OPEN_SLOTS: {exitCode: ExitCode.failed, meaning: 'del-node: the node has slots in migrating/importing state'},
  E_LAST_NODE: {exitCode: ExitCode.failed, meaning: 'del-node would remove the only reachable node'},
  E_NO_REPLICA: {exitCode: ExitCode.failed, meaning: 'failover: no replica (or none that qualifies) to promote'},
  E_FAILOVER: {exitCode: ExitCode.failed, meaning: 'the replica refused `CLUSTER FAILOVER`'},
  E_TIMEOUT: {exitCode: ExitCode.failed, meaning: 'a wait ran out (`--timeout`, `--wait-timeout`, backup\'s `--sync-timeout`): the message says which node lags'},
  E_UNREACHABLE_MASTER: {exitCode: ExitCode.failed, meaning: 'fix refuses while masters that own slots are unreachable (`--force`)'},
  E_FIX_FAILED: {exitCode: ExitCode.failed, meaning: 'fix could not repair the named slots (in `errors`)'},
  E_REPLY: {exitCode: ExitCode.failed, meaning: '`call`: a node answered with an error (in `errors`)'},
  E_NOT_SET: {exitCode: ExitCode.failed, meaning: '`set-timeout`: a node was not set, or set but not persisted (in `errors`)'},
  E_NOT_PERSISTED: {exitCode: ExitCode.failed, meaning: '`set-timeout`: a node was not set, or set but not persisted (in `errors`)'},
  E_NOT_READ: {exitCode: ExitCode.failed, meaning: '`set-timeout --dry-run`: a node\'s timeout could not be read (in `errors`)'},
  E_NO_REDIS_SERVER: {exitCode: ExitCode.failed, meaning: 'sandbox: neither redis-server nor valkey-server is installed'},
  E_NO_PORTS: {exitCode: ExitCode.failed, meaning: 'sandbox: no free ports, or a server did not start'},
  E_SPAWN: {exitCode: ExitCode.failed, meaning: 'sandbox: no free ports, or a server did not start'},
  E_SANDBOX_RUNNING: {exitCode: ExitCode.failed, meaning: 'sandbox: one runs already from that dir; its state file is unreadable or names a directory or process the sandbox did not create (nothing is touched)'},
  E_SANDBOX_STATE: {exitCode: ExitCode.failed, meaning: 'sandbox: one runs already from that dir; its state file is unreadable or names a directory or process the sandbox did not create (nothing is touched)'},
  E_SOURCE_IS_CLUSTER: {exitCode: ExitCode.failed, meaning: 'import: the source is a cluster node (import reads a standalone server)'},
  E_SOURCE_DBS: {exitCode: ExitCode.usage, meaning: 'import: the source has keys in a db other than 0; `--from-db N` imports one db'},
  E_SOURCE_REPLICA: {exitCode: ExitCode.usage, meaning: 'import: a replica\'s keys can only be copied, `--copy`'},
  E_SOURCE: {exitCode: ExitCode.failed, meaning: 'import: the source could not be scanned, or its SCAN does not end (its cursor came back, or it needed far more calls than its key count allows)'},
  E_KEYS_MISSING: {exitCode: ExitCode.failed, meaning: 'import, restore: the source said it migrated keys the cluster does not hold (a proxy or fake that answers `MIGRATE` with OK); the run stops'},
  E_SLOT_MAP_CHANGED: {exitCode: ExitCode.failed, meaning: 'import, restore: a master answered MOVED, the slot map changed meanwhile (`--resume` once `check` is clean)'},
  E_VERSION_MISMATCH: {exitCode: ExitCode.failed, meaning: 'import, restore: the cluster cannot read the source\'s serialization (it runs an older server version)'},
  E_CONFLICTS: {exitCode: ExitCode.failed, meaning: 'import, restore: keys the cluster has with different values were left alone (in `errors`; import\'s `--replace` overwrites)'},
  E_SYNC: {exitCode: ExitCode.failed, meaning: 'backup: a node refused `SYNC`/`REPLCONF` (ACL), or its file did not arrive whole'},
  E_RDB_TOO_BIG: {exitCode: ExitCode.failed, meaning: 'backup: a node announced or sent a file larger than `--max-rdb-bytes` (default: twice its `used_memory` plus 64 MB)'},
  E_NOT_A_BACKUP: {exitCode: ExitCode.usage, meaning: 'restore: the directory has no `manifest.json` (not a slotctl backup, or an unfinished one)'},
  E_CORRUPT_BACKUP: {exitCode: ExitCode.failed, meaning: 'restore: the manifest is not JSON, lists no files, has an entry that is not a whole file entry, or names a file outside the backup directory (a path, `..`); or a file holds keys of slots its master did not own'},
  E_CHECKSUM: {exitCode: ExitCode.failed, meaning: 'restore: a file is missing, is not a regular file (a symlink, FIFO or device), is longer than the manifest says, or does not match its SHA-256; nothing was loaded'},
  E_RDB_LOAD: {exitCode: ExitCode.failed, meaning: 'backup, restore: the local server could not load a file (`--server-binary` must read its RDB version); backup then writes no manifest'},
  E_BACKUP_MISMATCH: {exitCode: ExitCode.failed, meaning: 'backup, restore: a file holds another number of keys than the local server (or the manifest) says, or (backup) far fewer than its node held right before'},
  E_VERIFY_KEYS: {exitCode: ExitCode.failed, meaning: 'restore: the cluster\'s key count or content digest differs from the backup\'s (in `errors`)'},
  E_VERIFY_DIGEST: {exitCode: ExitCode.failed, meaning: 'restore: the cluster\'s key count or content digest differs from the backup\'s (in `errors`)'},
  E_NOT_EMPTY: {exitCode: ExitCode.failed, meaning: 'restore `--into`: the cluster already holds keys'},
  E_RESTORE: {exitCode: ExitCode.failed, meaning: 'restore: a file could not be restored (the message says why)'},
} as const satisfies Record<`E_${string}`, ErrorCodeEntry>

export type ErrorCode = keyof typeof ERROR_CODES

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}

/** The exit code a SlotctlError of this code ends the run with unless its thrower says otherwise. */
export function exitCodeOf(code: ErrorCode): ExitCodeValue {
  return ERROR_CODES[code].exitCode
}
