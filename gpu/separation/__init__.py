"""Splitting a full mix into vocal and instrumental with Demucs: the streaming separator
(`separate`), its weights (`weights`) and the dataset-separation job (`job`)."""
