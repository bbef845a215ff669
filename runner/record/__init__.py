"""What a run records: the journal, resume, streams, atomic files and tallies."""
