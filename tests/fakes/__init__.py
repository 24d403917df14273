"""Stand-ins for the outside world (libmpv...) that tests drive directly."""
