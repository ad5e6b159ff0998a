/**
 * What the `context` verbs share: none applies a context (they manage them), their --askpass
 * names a password source (nothing is asked), and each
 * answers with the contexts as they are after it (list's table, --json's list).
 */
import type {Command} from '@oclif/core'

import {type ContextView, type ContextsFile, contextViews, contextsFilePath, describePasswordSource} from '../context/contexts.js'
import {BaseCommand} from './base-command.js'
import {table} from './render.js'
import type {VerbResult} from '../core/result.js'

export interface ContextResult extends VerbResult {
  status: 'ok'
  /** the contexts file */
  file: string
  /** the context this verb added, used or removed (absent for list) */
  name?: string
  current: string | null
  contexts: ContextView[]
}

export abstract class ContextCommand<T extends typeof Command> extends BaseCommand<T> {
  static override usesContexts = false

  static override askpassIsSource = true

  protected get contextsFile(): string {
    return contextsFilePath()
  }

  protected contextResult(contexts: ContextsFile, name?: string): ContextResult {
    return {contexts: contextViews(contexts), current: contexts.current ?? null, errors: [], file: this.contextsFile, ...(name === undefined ? {} : {name}), status: 'ok', warnings: []}
  }

  /** One row a context: the current one starred; TLS as what it uses; the password as its source. */
  protected renderContexts(result: ContextResult): void {
    if (result.contexts.length === 0) {
      this.log(`no contexts in ${result.file}; add one with: ${this.config.bin} context add NAME HOST:PORT`)
      return
    }
    const rows = result.contexts.map((context) => [
      context.current ? '*' : '',
      context.name,
      context.seed,
      context.user ?? '-',
      tlsSummary(context),
      describePasswordSource(context.passwordSource ?? undefined),
    ])
    this.log(table(['', 'name', 'seed', 'user', 'tls', 'password'], rows))
  }
}

function tlsSummary(context: ContextView): string {
  const parts = [context.cacert && `ca ${context.cacert}`, context.cert && `cert ${context.cert}`, context.key && `key ${context.key}`, context.sni && `sni ${context.sni}`, context.insecure && 'insecure'].filter(Boolean)
  if (parts.length > 0) return parts.join('\n')
  return context.tls ? 'yes' : 'no'
}
