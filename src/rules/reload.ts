/*
 * Holds the rule set in use and replaces it when the rule files change.
 *
 * The folder is watched (fs.watch, recursive, so lists/ count too); changes are gathered for
 * `delayMs` so an editor's save or a git checkout of several files is read once, complete.
 * A new set that fails validation is refused whole: every problem is reported, the refusal is
 * counted, and the previous set keeps deciding. Messages in flight keep the set they started
 * with (each evaluation reads `current` once).
 *
 * LIMITATION: if the rules folder itself is deleted or replaced (not its files), the watch
 * ends; the set in use keeps running and a restart is needed to watch the new folder.
 */

import { watch, type FSWatcher } from 'node:fs';
import { RulesError } from './errors';
import { loadRuleSet } from './loader';
import type { RuleSet } from './schema';

export interface ReloadEvents {
  loaded(set: RuleSet, previous: RuleSet): void;
  refused(error: RulesError | Error, kept: RuleSet): void;
}

export class RuleSetHolder {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;

  private constructor(public current: RuleSet, private readonly events: ReloadEvents) {}

  /** Loads the set or throws RulesError: a bad set must stop start-up. */
  static load(dir: string, events: ReloadEvents): RuleSetHolder {
    return new RuleSetHolder(loadRuleSet(dir), events);
  }

  /** Starts watching the folder; changes are applied after `delayMs` of quiet. */
  watch(delayMs: number): void {
    if (this.watcher) return;
    this.watcher = watch(this.current.dir, {
      recursive: true, persistent: false,
    }, (_event, name) => {
      // Editor swap files and the test cases do not change the set.
      if (name && /(^|\/)(tests\/|\.#|#)|~$|\.swp$/.test(String(name))) return;
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.reloadNow();
      }, delayMs);
      this.timer.unref();
    });
    this.watcher.on('error', (error) => this.events.refused(error, this.current));
  }

  /** Reads the folder again; returns true when the new set is in use. */
  reloadNow(): boolean {
    const previous = this.current;
    let next: RuleSet;
    try {
      next = loadRuleSet(previous.dir);
    } catch (error) {
      this.events.refused(error instanceof Error ? error : new Error(String(error)), previous);
      return false;
    }
    if (next.version === previous.version) return true;
    this.current = next;
    this.events.loaded(next, previous);
    return true;
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearTimeout(this.timer);
  }
}

export { RulesError };
