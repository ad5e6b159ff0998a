// Flat config: typescript-eslint's recommended rules, plus the project's own rule that output
// goes through the one presentation module (src/lib/cli/output.ts).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const rawWrite = (stream) => ({
  selector: `CallExpression[callee.object.object.name='process'][callee.object.property.name='${stream}'][callee.property.name='write']`,
  message: `write through src/lib/cli/output.ts (or a command's note/tell/log): a raw process.${stream}.write skips password redaction, escaping and --quiet`,
})

export default tseslint.config(
  {ignores: ['dist/**', 'node_modules/**', 'bench/**', 'bin/**', 'oclif.manifest.json']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_'}],
    },
  },
  {
    // the build and docs scripts run under node
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: {globals: {console: 'readonly', process: 'readonly', URL: 'readonly'}},
  },
  {
    // the mocha reporter mocha loads with require()
    files: ['**/*.cjs'],
    languageOptions: {sourceType: 'commonjs', globals: {module: 'writable', process: 'readonly', require: 'readonly'}},
    rules: {'@typescript-eslint/no-require-imports': 'off'},
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/lib/cli/output.ts'],
    rules: {
      'no-restricted-syntax': ['error', rawWrite('stdout'), rawWrite('stderr')],
    },
  },
)
