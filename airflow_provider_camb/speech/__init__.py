"""What a speech request is, how long texts are cut into segments, how segments are joined."""
