"""The faust adapter: the tally's processor in a faust agent, its state in a faust table."""
