/**
 * What the operator should type to run slotctl again: `slotctl` when that name on PATH is this
 * very installation (npm i -g, npm link), otherwise the path of the script that ran (./bin/run.js
 * in a clone). Banners and hints use it, so what they say to type works as printed.
 */
import {existsSync, realpathSync} from 'node:fs'
import path from 'node:path'

function realpath(file: string): string | undefined {
  try {
    return realpathSync(file)
  } catch {
    return undefined
  }
}

export function commandName(bin: string, env: NodeJS.ProcessEnv = process.env, script: string | undefined = process.argv[1]): string {
  const running = script ? realpath(script) : undefined
  if (!running) return bin
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    const candidate = dir ? path.join(dir, bin) : ''
    if (candidate && existsSync(candidate) && realpath(candidate) === running) return bin
  }
  const relative = path.relative(process.cwd(), running)
  return relative.startsWith('..') || path.isAbsolute(relative) ? running : `./${relative}`
}
