"""Settings split by environment: ``base`` holds what every environment shares.

``DJANGO_SETTINGS_MODULE`` picks ``rcmweb.settings.local`` (the default of ``manage.py``),
``rcmweb.settings.test`` (pytest) or ``rcmweb.settings.production``.
"""
