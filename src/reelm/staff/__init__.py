"""Staff: operator employees, their second factor and tickets, and Cedar-gated reads of protected
data, every decision logged in the region's audit log."""
