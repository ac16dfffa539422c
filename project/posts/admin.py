from django.contrib import admin
from django.utils.html import format_html

from .models import Post


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["id", "thumbnail", "owner", "text", "created"]
    list_select_related = ["owner"]
    search_fields = ["text", "owner__username"]
    raw_id_fields = ["owner"]

    @admin.display(description="image")
    def thumbnail(self, obj):
        if not obj.image:
            return "-"
        return format_html('<img src="{}" style="height:48px;width:48px;object-fit:cover">', obj.image.url)
