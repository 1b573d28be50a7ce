# graphite-web settings of ibsim's Graphite image (GRAPHITE_SETTINGS_MODULE: graphite.settings
# imports this module over its defaults).
SECRET_KEY = "ibsim-demo-cluster"
TIME_ZONE = "UTC"
STORAGE_DIR = "/var/lib/ibsim-graphite"
WHISPER_DIR = "/var/lib/ibsim-graphite/whisper"
LOG_DIR = "/var/log/ibsim-graphite"
INDEX_FILE = "/var/lib/ibsim-graphite/index"
CARBONLINK_HOSTS = ["127.0.0.1:7002"]
DATABASES = {"default": {"NAME": "/var/lib/ibsim-graphite/graphite.db",
                         "ENGINE": "django.db.backends.sqlite3",
                         "USER": "", "PASSWORD": "", "HOST": "", "PORT": ""}}
