// moved to core/errors.ts; shim kept for branches in flight, removed after merge
export * from './core/errors.js'
