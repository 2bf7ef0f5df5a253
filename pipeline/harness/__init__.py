"""What the tests and the reliability benchmark use to attack the pipeline: fault
scenarios at the failpoints, a throwaway lakeFS stack of their own, and the secret
scanner. Nothing in the product imports this package (import-linter checks it)."""
