#!/usr/bin/env node
// oclif checks its own engines (node >= 18) with semver, about 15 ms of every start;
// package.json's engines (node >= 20) already say more. Set before oclif loads.
process.env.OCLIF_DISABLE_ENGINE_WARNING ??= '1'

const {execute} = await import('@oclif/core')

await execute({dir: import.meta.url})
