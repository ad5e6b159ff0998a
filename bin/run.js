#!/usr/bin/env node
// oclif checks its own engines (node >= 18) with semver, about 15 ms of every start;
// package.json's engines (node >= 20) already say more. Set before oclif loads.
process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1'

// the bundle (npm run build): oclif, ioredis and every command in one file, and the same
// oclif copy that runs the commands
const {execute} = await import('../dist/slotctl.js')

await execute({dir: import.meta.url})

// Every verb awaits all its work, so the process can end here. Left alone, Node would wait
// for ioredis' reply parser: after a reply larger than a socket read (a fragmented
// cluster's CLUSTER NODES) it shrinks its buffer pool on a 50 ms timer, for seconds.
for (const stream of [process.stdout, process.stderr]) {
  if (stream.writableLength === 0) continue
  await new Promise((resolve) => {
    for (const event of ['drain', 'close', 'error']) stream.once(event, resolve)
  })
}
process.exit()
