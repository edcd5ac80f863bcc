/*
 * The one error a bad setting produces.
 *
 * Its message is a single line an operator can act on: where the value came from (a file and
 * line, or an environment variable), the key, the value as given, and what was expected.
 * Start-up prints it and exits non-zero; nothing is half-applied.
 */

export interface ConfigProblem {
  /** `config/moat.ini:12` or `MOAT_DOWNSTREAM`. */
  source: string;
  key: string;
  value: string;
  expected: string;
}

export class ConfigError extends Error {
  readonly problem: ConfigProblem;

  constructor(problem: ConfigProblem, options?: { cause?: unknown }) {
    const shown = JSON.stringify(problem.value.length > 120
      ? `${problem.value.slice(0, 120)}...` : problem.value);
    super(`${problem.source}: ${problem.key} = ${shown}: expected ${problem.expected}`, options);
    this.name = 'ConfigError';
    this.problem = problem;
  }
}
