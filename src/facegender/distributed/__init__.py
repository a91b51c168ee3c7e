"""More than one machine: batch prediction on a Ray cluster (Ray Data). Ray is optional: facegender[distributed]."""
