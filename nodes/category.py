"""The node menu category every pack node sits under."""
CATEGORY = "TimeAwareSR"
