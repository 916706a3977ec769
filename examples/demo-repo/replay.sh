#!/bin/sh
# ROAD's replay command for this repository: road.config.json "replay": { "command": ["sh", "replay.sh"] }.
# Replays one recorded run ($ROAD_CASE_ID, the run's id) of one phase ($ROAD_PHASE_ID) against the code of this
# worktree and reports how it ended on its last line, the way ROAD reads it:
#   {"road":{"outcome":"SUCCESS|FAILED|TIMEOUT","tokens":N,"stop_reason":"…"}}
set -u
cd "$(dirname "$0")"
. ./lib/workload.sh
run=${ROAD_CASE_ID:?set ROAD_CASE_ID to the id of a recorded run}
attempt=${ROAD_ATTEMPT_REPLAYED:-1} # ROAD replays a run's first attempt
OUTCOME=SUCCESS STOP_REASON=completed TOKENS=0 WHY= FAILED_TESTS= PAGES=
case ${ROAD_PHASE_ID:-} in
  auth-migration) . ./src/auth/migrate.sh && auth_migration "$run" "$attempt" ;;
  schema-codegen) . ./src/codegen/types.sh && . ./src/codegen/generate.sh && schema_codegen "$run" "$attempt" ;;
  api-tests) . ./src/api/orders.sh && . ./tests/api/orders.test.sh && api_tests "$run" "$attempt" ;;
  docs-build) . ./docs/context.sh && docs_build "$run" "$attempt" ;;
  *) echo "replay.sh: no phase '${ROAD_PHASE_ID:-}' (ROAD_PHASE_ID must be auth-migration, schema-codegen, api-tests or docs-build)" >&2; exit 2 ;;
esac
[ -n "$WHY" ] && echo "# why: $WHY"
[ -n "$FAILED_TESTS" ] && echo "$FAILED_TESTS" | sed 's/^/# failed test: /'
[ -n "$PAGES" ] && echo "$PAGES" | sed 's/^/# page: /'
printf '{"road":{"outcome":"%s","tokens":%d,"stop_reason":"%s"}}\n' "$OUTCOME" "$TOKENS" "$STOP_REASON"
