# schema-codegen: generates the row types of the tables the run changed and checks them against rows the driver
# returns. Each generation is a model call; its tokens grow with the columns.

# generate_types "name:type …": one generated field per column.
generate_types() {
  for column in $1; do echo "  ${column%%:*}: $(ts_type "${column#*:}");"; done
}

# check_types "name:type …": every generated field has the driver's type, else MISMATCH names the column.
check_types() {
  for column in $1; do
    if [ "$(ts_type "${column#*:}")" != "$(driver_type "${column#*:}")" ]; then
      MISMATCH="${column%%:*} is generated as $(ts_type "${column#*:}") but the driver returns $(driver_type "${column#*:}") (${column#*:})"
      return 1
    fi
  done
}

# schema_codegen RUN ATTEMPT
schema_codegen() {
  schema="id:uuid email:text created_at:timestamptz active:bool"
  case $(draw "$1/tables" 4) in
    0) schema="$schema plan:text seats:int4" ;;
    1) schema="$schema last_login:timestamptz" ;;
  esac
  [ "$(draw "$1/billing" 100)" -lt 6 ] && schema="$schema total:numeric"
  columns=$(echo $schema | wc -w)
  generate_types "$schema" > /dev/null
  TOKENS=$((2900 + 450 * columns))
  if check_types "$schema"; then
    OUTCOME=SUCCESS STOP_REASON=completed
  else
    OUTCOME=FAILED STOP_REASON=type_mismatch WHY="generated types do not match the rows: $MISMATCH"
  fi
}
