"""The development kit: the local demo and its view, embedded services, synthetic feeds and the benches."""
