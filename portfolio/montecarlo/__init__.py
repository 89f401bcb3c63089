"""The Monte Carlo projection: assumptions, the engines' kernels, simulation, pool paths,
replenishment profiles and the Dask driver. Pure computation: no database, no files
except the assumptions TOML."""
