"""Files written safely: every output goes to a temporary name in its own folder and is renamed
into place, so a crash, a kill or a full disk leaves the old file or the new one, never a mix;
nothing a user has is replaced without `overwrite`."""
