# auth-migration: applies the run's auth migration. The session sweeper (a cron job) may run at the same moment;
# both take table locks one table at a time, and two transactions that take the same tables in different orders
# wait on each other until lock_timeout.

# The sweeper's lock order: it sorts its tables.
SWEEPER_LOCKS="sessions users"

# lock_order TABLE…: the order in which the migration takes its table locks.
lock_order() {
  for table in "$@"; do echo "$table"; done
}

# before X Y "T…": X comes before Y in the list (false when either is missing).
before() {
  seen=
  for t in $3; do
    [ "$t" = "$1" ] && seen=1
    [ "$t" = "$2" ] && { [ -n "$seen" ]; return; }
  done
  return 1
}

# crossing "A…" "B…": two lock orders that take a shared pair of tables the other way round.
crossing() {
  for x in $1; do
    for y in $1; do
      [ "$x" != "$y" ] && before "$x" "$y" "$1" && before "$y" "$x" "$2" && { echo "$x/$y"; return 0; }
    done
  done
  return 1
}

# auth_migration RUN ATTEMPT
auth_migration() {
  case $(draw "$1/tables" 3) in
    0) tables="users sessions" ;;
    1) tables="users sessions tokens" ;;
    *) tables="users" ;;
  esac
  order=$(lock_order $tables | tr '\n' ' ')
  TOKENS=$((4200 + 1100 * $(echo $tables | wc -w)))
  sweeper_running=$(draw "$1/$2/sweeper" 100)
  if [ "$sweeper_running" -lt 22 ] && pair=$(crossing "$order" "$SWEEPER_LOCKS"); then
    OUTCOME=TIMEOUT STOP_REASON=migration_lock_timeout
    TOKENS=$((TOKENS + 2600))
    WHY="the migration (locks: $order) and the session sweeper (locks: $SWEEPER_LOCKS) waited on each other for $pair until lock_timeout"
  else
    OUTCOME=SUCCESS STOP_REASON=completed
  fi
}
