"""Email: compose from templates, queue in the outbox, deliver over SMTP or to .eml files."""
