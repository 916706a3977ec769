/**
 * `road rules list | export | import` and `road prompts --phase X`: the promoted rules (ROAD-F), the file they travel
 * in (the seed's JSON shape, or an AGENTS.md-style markdown file), and the prevention prompt an agent is served.
 */
import type { Command } from 'commander';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { activeRulesForPhase, importRules, listRules } from '../../db/rules.js';
import { InvalidInput } from '../../domain/errors.js';
import { exportRules, parseRulesFile, phasePrompt, renderRulesMarkdown, requirePhase } from '../../domain/promotion.js';
import type { Session } from '../cli.js';
import { formatTable, printJson } from '../format.js';

/** A rules file is a few hundred bytes per rule; 10,000 rules fit well within this. */
const MAX_IMPORT_BYTES = 32 * 1024 * 1024;
const FORMATS = ['json', 'markdown'] as const;
type ExportFormat = (typeof FORMATS)[number];

const pct = (fraction: number | null) => (fraction === null ? '—' : `${(fraction * 100).toFixed(1)} %`);
const minute = (iso: string) => `${iso.slice(0, 16).replace('T', ' ')}Z`;

export function registerRuleCommands(program: Command, session: () => Session): void {
  const rules = program.command('rules').description('promoted rules: fixes that passed replay and approval, served to the agent as prevention prompts');

  rules
    .command('list', { isDefault: true })
    .description('list the active rules (default), or every rule with --all')
    .option('--all', 'include demoted rules, with why they were demoted')
    .option('--json', 'print the rules as JSON')
    .action(async (opts: { all?: boolean; json?: boolean }) => {
      const rows = await listRules(session().database(), { all: opts.all });
      if (opts.json) return printJson(rows);
      if (!rows.length) {
        return console.log(opts.all ? 'No promoted rules yet.' : 'No active promoted rules (see `road rules list --all` for demoted ones).');
      }
      console.log(
        formatTable(
          ['RULE', 'PHASES', 'SUCCESS', 'N', 'WILSON LOW', 'PROMOTED', 'STATUS', 'SOURCE TASK', 'MITIGATION'],
          rows.map((r) => [
            r.rule_id,
            r.applicable_phases.join(', '),
            pct(r.success_rate),
            r.n === null ? '—' : String(r.n),
            pct(r.wilson_lower),
            minute(r.promoted_at),
            r.status,
            r.source_task ?? '—',
            r.mitigation,
          ]),
        ),
      );
      const demoted = rows.filter((r) => r.demotion);
      if (demoted.length) console.log(['', ...demoted.map((r) => `${r.rule_id} demoted ${minute(r.demoted_at!)}: ${r.demotion!.reason}`)].join('\n'));
    });

  rules
    .command('export <file>')
    .description("write every rule to FILE: JSON in the seed's shape {promoted_at, count, rules} (all rules), or markdown for a coding agent (active rules); - for stdout")
    .option('--format <format>', 'json or markdown (default: markdown for a .md file, else json)')
    .action(async (file: string, opts: { format?: string }) => {
      const format = exportFormat(file, opts.format);
      const all = await listRules(session().database(), { all: true });
      const now = new Date();
      const content = format === 'markdown' ? renderRulesMarkdown(all, now) : JSON.stringify(exportRules(all, now), null, 2) + '\n';
      if (file === '-') return void process.stdout.write(content);
      writeAtomically(file, content);
      const written = format === 'markdown' ? all.filter((r) => r.status === 'active').length : all.length;
      console.log(`wrote ${written} rule(s) to ${file} (${format})`);
    });

  rules
    .command('import <file>')
    .description('import rules from a JSON rules file (as `road rules export` writes it); matched by fingerprint, so importing twice changes nothing')
    .option('--json', 'print what was imported, updated, unchanged and skipped as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const incoming = parseRulesFile(readJson(file));
      const result = await importRules(session().database(), incoming, new Date());
      const counts = { imported: result.imported.length, updated: result.updated.length, unchanged: result.unchanged.length, skipped: result.skipped.length };
      if (opts.json) return printJson({ file, ...counts, rules: result });
      console.log(`${file}: imported ${counts.imported}, updated ${counts.updated}, unchanged ${counts.unchanged}, skipped ${counts.skipped}`);
      for (const s of result.skipped) console.log(`  skipped ${s.rule_id}: ${s.reason}`);
    });

  program
    .command('prompts')
    .description('the prevention prompt for a phase: its active rules in the seed\'s format (empty when none apply)')
    .requiredOption('--phase <phase>', 'the phase_id, as the agent reports it in telemetry')
    .option('--json', 'print {phase, prompt, rules} as JSON')
    .action(async (opts: { phase: string; json?: boolean }) => {
      const phase = requirePhase(opts.phase, '--phase');
      const served = phasePrompt(phase, await activeRulesForPhase(session().database(), phase));
      if (opts.json) return printJson(served);
      // stdout carries only the prompt, so `$(road prompts --phase X)` is empty when no rule applies.
      if (!served.prompt) return console.error(`No active promoted rule applies to phase "${phase}": no prevention prompt.`);
      console.log(served.prompt);
    });
}

function exportFormat(file: string, format: string | undefined): ExportFormat {
  if (format === undefined) return /\.(md|markdown)$/i.test(file) ? 'markdown' : 'json';
  if (!(FORMATS as readonly string[]).includes(format)) throw new InvalidInput(`--format must be json or markdown (got "${format}")`);
  return format as ExportFormat;
}

/** A reader never sees half a file: written beside it, then renamed over it. */
function writeAtomically(file: string, content: string): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(temporary, content);
    renameSync(temporary, file);
  } catch (error) {
    throw new InvalidInput(`cannot write ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function readJson(file: string): unknown {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw new InvalidInput(`cannot read ${file}: no such file`);
  }
  if (size > MAX_IMPORT_BYTES) throw new InvalidInput(`${file} is ${size} bytes: a rules file may be at most ${MAX_IMPORT_BYTES} bytes (32 MiB)`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new InvalidInput(`${file} is not JSON: ${(error as Error).message}`);
  }
}

