"""streamrec streaming side: Faust app, agents, tables, topics and codecs."""
