# The TypeScript type of a column, by its PostgreSQL type, for the generated row types.
ts_type() {
  case $1 in
    uuid | text | varchar) echo string ;;
    int2 | int4 | float8 | numeric) echo number ;;
    timestamptz | date) echo Date ;;
    bool) echo boolean ;;
    *) echo unknown ;;
  esac
}

# What node-postgres really returns for a column type: the ground truth the generated types are checked against.
driver_type() {
  case $1 in
    uuid | text | varchar | numeric | int8) echo string ;;
    int2 | int4 | float8) echo number ;;
    timestamptz | date) echo Date ;;
    bool) echo boolean ;;
    *) echo unknown ;;
  esac
}
