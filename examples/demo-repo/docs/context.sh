# docs-build: asks the model to update the docs pages the run changed. The prompt is the files context_files lists;
# tokens ≈ bytes / 4, plus the answer.

# context_files PAGE…: the files the prompt includes.
context_files() {
  echo docs/index.md
  ls docs/pages/*.md
}

# docs_build RUN ATTEMPT
docs_build() {
  all=$(ls docs/pages | sed 's/\.md$//')
  count=$(echo "$all" | wc -l)
  changed=
  for n in 1 2 3; do
    [ "$n" -gt 1 ] && [ "$(draw "$1/more-$n" 2)" -eq 0 ] && break
    changed="$changed $(echo "$all" | sed -n "$(($(draw "$1/page-$n" "$count") + 1))p")"
  done
  PAGES=$(for page in $changed; do echo "docs/pages/$page.md"; done)
  bytes=$(cat $(context_files $changed) | wc -c)
  TOKENS=$((bytes / 4 + 1500))
  OUTCOME=SUCCESS STOP_REASON=completed
}
