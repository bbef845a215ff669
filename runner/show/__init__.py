"""What a person sees of a run or a sweep: its pages, figures, tables and report files."""
