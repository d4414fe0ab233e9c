"""Design-space sweeps over RTL component parameters on Dask ``distributed``."""
