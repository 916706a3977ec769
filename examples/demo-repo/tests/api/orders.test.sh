# api-tests: the API suite. Each test prints nothing when it passes and its id on stdout when it fails.

test_creates_an_order() {
  order="o-1 1700000000000"
  [ -n "$order" ] || echo "tests/api/orders.test.sh::creates an order"
}

# Two orders placed one after the other; the clock of the test database has millisecond resolution, so now and then
# both get the same created_at.
test_lists_orders_newest_first() {
  gap=$(draw "$1/$2/clock" 150)
  [ "$gap" -gt 0 ] && gap=$((gap % 7 + 1))
  first=$(printf 'o-1 1700000000000\no-2 %s\n' $((1700000000000 + gap)) | list_orders | head -n 1)
  [ "${first%% *}" = o-2 ] || echo "tests/api/orders.test.sh::lists orders newest first"
}

test_rejects_an_unknown_customer() {
  [ "$(printf '' | list_orders | wc -l)" -eq 0 ] || echo "tests/api/orders.test.sh::rejects an unknown customer"
}

# api_tests RUN ATTEMPT
api_tests() {
  FAILED_TESTS=$(
    test_creates_an_order "$1" "$2"
    test_lists_orders_newest_first "$1" "$2"
    test_rejects_an_unknown_customer "$1" "$2"
  )
  TOKENS=$((4800 + $(draw "$1/suite" 1500)))
  if [ -z "$FAILED_TESTS" ]; then
    OUTCOME=SUCCESS STOP_REASON=completed
  else
    OUTCOME=FAILED STOP_REASON=tests_failed WHY="failing: $(echo "$FAILED_TESTS" | tr '\n' ' ')"
  fi
}
