// Mocha's spec reporter plus a plain closing line that CI recognises: "N passed, N failed".
const Mocha = require('mocha')

const {Spec} = Mocha.reporters
const {EVENT_RUN_END} = Mocha.Runner.constants

class SummaryReporter extends Spec {
  constructor(runner, options) {
    super(runner, options)
    runner.once(EVENT_RUN_END, () => {
      const {failures, passes, pending} = runner.stats
      process.stdout.write(`\n${passes} passed, ${failures} failed${pending ? `, ${pending} skipped` : ''}\n`)
    })
  }
}

module.exports = SummaryReporter
