"""`flywheel bench ...`: each benchmark with the baseline it is measured against, in the
same run, and the corpora and samplers it needs. Nothing in the product imports this
package (import-linter checks it); the CLI imports each benchmark when it is asked for.
"""
