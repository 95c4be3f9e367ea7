"""Points: the ledger every points movement goes through, the admin-edited points rules,
points payment at checkout, virtual goods and the user's inventory. docs/points.md."""
