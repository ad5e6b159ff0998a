/**
 * Atomic slot migration jobs (Valkey >= 9) as a node reports them in CLUSTER
 * GETSLOTMIGRATIONS: what the loader reads from every node, and what check, fix and the
 * migration verbs look at before they call a cluster at rest.
 */

/** One job as CLUSTER GETSLOTMIGRATIONS reports it (a flat field/value list per job). */
export interface SlotMigrationJob {
  name: string
  operation: string
  slotRanges: string
  sourceNode: string
  targetNode: string
  state: string
  message: string
  createTime: number
}

const TERMINAL = new Set(['cancelled', 'failed', 'success'])

export function isTerminal(job: Pick<SlotMigrationJob, 'state'>): boolean {
  return TERMINAL.has(job.state)
}

export function parseSlotMigrations(reply: unknown): SlotMigrationJob[] {
  if (!Array.isArray(reply)) return []
  return reply.map((entry) => {
    const fields = new Map<string, string>()
    const list = Array.isArray(entry) ? entry : []
    for (let i = 0; i + 1 < list.length; i += 2) fields.set(String(list[i]), String(list[i + 1]))
    return {
      createTime: Number(fields.get('create_time') ?? 0),
      message: fields.get('message') ?? '',
      name: fields.get('name') ?? '',
      operation: fields.get('operation') ?? '',
      slotRanges: fields.get('slot_ranges') ?? '',
      sourceNode: fields.get('source_node') ?? '',
      state: fields.get('state') ?? '',
      targetNode: fields.get('target_node') ?? '',
    }
  })
}
