"""Downloads: an HTTP transport, dataset file fetching with checksums and terms, and safe loading of pickled arrays."""
