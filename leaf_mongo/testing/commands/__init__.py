"""Command handlers of the emulator, one mixin per family, combined in :class:`~leaf_mongo.testing.backend.Backend`."""
