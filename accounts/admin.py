from django.contrib import admin

from accounts.models import ReaderProfile


@admin.register(ReaderProfile)
class ReaderProfileAdmin(admin.ModelAdmin):
    list_display = ("code", "user", "group", "years_experience")
    list_filter = ("group",)
    search_fields = ("code", "user__username")
