"""What the person at the computer reads: `status` and desktop notifications, in the OS
language (Chinese or English), with times in the company's time zone and remedies for this
computer's OS. The words live in `words.py`; the rest decides which to show."""
