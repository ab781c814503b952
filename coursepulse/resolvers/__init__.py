"""The domain operations: plain async functions (tx, viewer, arguments) -> rows.

`tx` is a Transaction (models/transactions.py) opened by the front door; every business
rule lives here once; no GraphQL or HTTP imports.
"""
