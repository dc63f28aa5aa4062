"""Operations: backup, restore, verify, gc, and what they share."""
