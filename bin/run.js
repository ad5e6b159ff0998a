#!/usr/bin/env node
import {createRequire} from 'node:module'

// oclif checks its own engines (node >= 18) with semver, about 15 ms of every start;
// package.json's engines (node >= 20) already say more. Set before oclif loads.
process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1'

// The bundle (npm run build): oclif, ioredis and every command in one file, compiled from
// V8's code cache; and the same oclif copy that runs the commands.
const {loadBundle} = createRequire(import.meta.url)('./bundle-loader.cjs')
const {execute} = loadBundle().exports

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
