"""Thin receivers that clear the cached user (``accounts.backends``) whenever the user or its groups change,
whoever changes them: our services, Django's admin, ``manage.py changepassword``."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from accounts.backends import user_cache_clear

User = get_user_model()


@receiver(post_save, sender=User, dispatch_uid="accounts.user_saved")
@receiver(post_delete, sender=User, dispatch_uid="accounts.user_deleted")
def user_changed(sender, instance, **kwargs):
    user_cache_clear(instance.pk)


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="accounts.user_groups_changed")
def user_groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if not reverse:                       # user.groups.add/remove/set/clear
        if action.startswith("post_"):
            user_cache_clear(instance.pk)
    elif action in ("post_add", "post_remove"):   # group.user_set.add/remove: pk_set are the users
        for user_id in pk_set:
            user_cache_clear(user_id)
    elif action == "pre_clear":           # group.user_set.clear(): its users, while they are still there
        for user_id in instance.user_set.values_list("pk", flat=True):
            user_cache_clear(user_id)
