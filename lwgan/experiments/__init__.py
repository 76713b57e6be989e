"""The paper's experiments as data: named variants (`variants`), the queue of DVC experiments that runs them
(`queue`), and the Table-1 report built from their tracked runs (`stability`, `report`)."""
