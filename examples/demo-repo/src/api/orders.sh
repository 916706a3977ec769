# The orders endpoint: GET /orders lists a customer's orders, newest first.

# list_orders: reads "id created_at_ms" lines, writes them newest first.
list_orders() {
  sort -k2,2nr
}
