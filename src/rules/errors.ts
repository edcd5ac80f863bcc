/*
 * The errors of the rules engine.
 *
 * A rule set is validated whole: every problem found is kept as a RuleProblem naming the file,
 * line and column, what is wrong and what was expected, and the set is refused with one
 * RulesError carrying all of them. Start-up prints one line per problem and exits; a live
 * reload logs the same lines and keeps the previous set.
 */

export interface RuleProblem {
  /** Path of the file, relative to the rules folder when inside it. */
  file: string;
  /** 1-based; 0 when the problem is about the file as a whole. */
  line: number;
  column: number;
  /** What is wrong, e.g. `unknown key "actoins"`. */
  message: string;
  /** What was expected instead, completing "expected ...". */
  expected?: string;
}

export function formatProblem(problem: RuleProblem): string {
  const where = problem.line > 0
    ? `${problem.file}:${problem.line}:${problem.column}` : problem.file;
  const expected = problem.expected ? `; expected ${problem.expected}` : '';
  return `${where}: ${problem.message}${expected}`;
}

/** A rule set that cannot be used; `problems` holds every reason, in file order. */
export class RulesError extends Error {
  readonly problems: RuleProblem[];
  readonly dir: string;

  constructor(dir: string, problems: RuleProblem[], options?: { cause?: unknown }) {
    super(`rule set in ${dir} refused `
      + `(${problems.length} problem${problems.length === 1 ? '' : 's'}):`
      + `\n${problems.map(formatProblem).join('\n')}`, options);
    this.name = 'RulesError';
    this.dir = dir;
    this.problems = problems;
  }

  /** One line per problem, as start-up prints them. */
  lines(): string[] {
    return this.problems.map(formatProblem);
  }
}

/** A side effect of a rule (copy, redirect, notify) that could not be carried out. */
export class RuleActionError extends Error {
  readonly ruleId: string;
  readonly action: string;

  constructor(ruleId: string, action: string, message: string, options?: { cause?: unknown }) {
    super(`rule ${ruleId}: ${action}: ${message}`, options);
    this.name = 'RuleActionError';
    this.ruleId = ruleId;
    this.action = action;
  }
}
