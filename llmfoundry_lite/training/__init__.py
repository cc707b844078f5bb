"""Training on Composer: config schema, model/loader/callback builders, the train loop."""
