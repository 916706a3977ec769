/**
 * Realistic, deterministic phase-outcome events for benchmarks and demo data: runs of 8–24 phases, most succeeding,
 * failed phases retried within the run, token counts with a long tail, the files each phase touches, occasional
 * failing tests. The same seed gives the same events.
 */
export interface GenerateOptions {
  /** The events spread over `days` ending at `end` (default: 7 days ending 2026-11-28T00:00Z). */
  days?: number;
  end?: Date;
  seed?: number;
}

const PHASES = Array.from({ length: 40 }, (_, i) => `phase-${String(i + 1).padStart(3, '0')}`);
const PHASE_TYPES = ['plan', 'build', 'test', 'review', 'migrate'];
const MODELS = ['claude-sonnet', 'gpt-large', 'local-coder'];
const FAILURE_REASONS = ['builder_crash', 'patch_apply_failed', 'tests_failed', 'context_overflow', 'tool_error', 'lint_failed'];
const MODULES = ['auth', 'billing', 'api', 'db', 'ui', 'search', 'jobs', 'cli'];
const RATIONALE = 'Chose to rerun the builder after the patch failed to apply cleanly; the schema dump in the context was truncated, so the model re-derived the migration order from the models module.';

/** mulberry32: a tiny seeded PRNG (benchmarks must not depend on Math.random). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function* generateEvents(n: number, options: GenerateOptions = {}): Generator<Record<string, unknown>> {
  const random = prng(options.seed ?? 42);
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
  const endMs = (options.end ?? new Date('2026-11-28T00:00:00Z')).getTime();
  const spanMs = (options.days ?? 7) * 86_400_000;
  const startMs = endMs - spanMs;
  let produced = 0;
  for (let run = 0; produced < n; run++) {
    const runId = `run-${String(run).padStart(7, '0')}`;
    const commit = (Math.floor(random() * 0xffffffff).toString(16).padStart(8, '0') + 'c0ffee').slice(0, 12);
    const model = pick(MODELS);
    // Runs are spread evenly over the window; phases within a run a few minutes apart.
    let at = startMs + Math.floor((produced / n) * spanMs);
    const phases = 8 + Math.floor(random() * 17);
    for (let p = 0; p < phases && produced < n; p++) {
      const phaseId = PHASES[(run * 7 + p * 3) % PHASES.length]!;
      const module = MODULES[(run + p) % MODULES.length]!;
      for (let attempt = 1; attempt <= 3 && produced < n; attempt++) {
        const roll = random();
        const outcome = roll < 0.8 || attempt === 3 ? 'SUCCESS' : roll < 0.92 ? 'FAILED' : roll < 0.97 ? 'TIMEOUT' : 'STUCK';
        const tokens = Math.floor(2000 + Math.exp(random() * 10.5)); // 2k … ~38k, long tail
        at += 30_000 + Math.floor(random() * 240_000);
        const event: Record<string, unknown> = {
          event_id: `${runId}:${phaseId}:${attempt}`,
          run_id: runId,
          phase_id: phaseId,
          phase_type: PHASE_TYPES[p % PHASE_TYPES.length],
          model,
          attempt,
          outcome,
          stop_reason: outcome === 'SUCCESS' ? 'completed' : outcome === 'FAILED' ? pick(FAILURE_REASONS) : outcome.toLowerCase(),
          tokens_used: tokens,
          prompt_tokens: Math.floor(tokens * 0.8),
          completion_tokens: tokens - Math.floor(tokens * 0.8),
          duration_ms: 5_000 + Math.floor(random() * 600_000),
          files: [`src/${module}/${phaseId}.py`, `src/${module}/models.py`].slice(0, 1 + Math.floor(random() * 2)),
          commit_sha: commit,
          occurred_at: new Date(Math.min(at, endMs - 1)).toISOString(),
          metadata: { agent: 'autopack', version: '0.9.1' },
        };
        if (outcome !== 'SUCCESS') {
          event.decision_rationale = RATIONALE;
          if (random() < 0.3) event.tests_failed = [`tests/${module}/test_${phaseId}.py::test_${Math.floor(random() * 20)}`];
        }
        produced++;
        yield event;
        if (outcome === 'SUCCESS') break;
      }
    }
  }
}
